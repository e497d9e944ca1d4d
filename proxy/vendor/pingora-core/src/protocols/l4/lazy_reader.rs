// Breakwater patch: a read buffer that a socket holds only while it has something buffered.
//
// tokio's `BufReader` allocates its buffer up front and keeps it for the socket's life: for a
// TLS client connection (read through one record's worth, 16 KiB, so that rustls gets a record
// per read) that was half of what an idle keep-alive connection cost. This one takes its
// buffer when a read is to be buffered and gives it back once the reader above has taken all
// of it; otherwise it behaves as tokio's (same threshold: with nothing buffered, a read at
// least as large as the capacity goes straight through). The buffer is not zeroed: the reader
// under it fills it through a `ReadBuf` over its spare capacity.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

#[derive(Debug)]
pub(crate) struct LazyBufReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed to the reader above.
    pos: usize,
    capacity: usize,
}

impl<R: AsyncRead + Unpin> LazyBufReader<R> {
    pub(crate) fn with_capacity(capacity: usize, inner: R) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            pos: 0,
            capacity,
        }
    }

    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The reader, dropping anything still buffered (as tokio's `into_inner`).
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    /// Fill the (empty) buffer with one read of the reader under it.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.capacity);
        }
        let mut spare = ReadBuf::uninit(self.buf.spare_capacity_mut());
        let result = Pin::new(&mut self.inner).poll_read(cx, &mut spare);
        let filled = spare.filled().len();
        // SAFETY: `ReadBuf` guarantees its first `filled` bytes were initialised (written by
        // the reader), and they are the first bytes of `buf`'s spare capacity, which starts at
        // `buf.len()` == 0.
        #[allow(unsafe_code)]
        unsafe {
            self.buf.set_len(filled)
        };
        self.pos = 0;
        if self.buf.is_empty() {
            // Nothing read (pending, an error or the end): nothing to keep.
            self.buf = Vec::new();
        }
        result
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LazyBufReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        if me.pos == me.buf.len() {
            if out.remaining() >= me.capacity {
                return Pin::new(&mut me.inner).poll_read(cx, out);
            }
            ready!(me.fill(cx))?;
        }
        let n = out.remaining().min(me.buf.len() - me.pos);
        out.put_slice(&me.buf[me.pos..me.pos + n]);
        me.pos += n;
        if me.pos == me.buf.len() {
            // All taken: the buffer goes back to the allocator.
            me.buf = Vec::new();
            me.pos = 0;
        }
        Poll::Ready(Ok(()))
    }
}
