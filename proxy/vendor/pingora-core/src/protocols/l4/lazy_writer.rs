// Breakwater patch: a write buffer that a socket holds only while it has something buffered.
//
// tokio's `BufWriter` allocates its buffer up front and keeps it for the socket's life: 1.4
// KiB (pingora's default write buffer) for every idle keep-alive connection, client or
// origin. This one takes its buffer when a write is to be buffered and gives it back once
// flushed; otherwise it behaves as tokio's (same thresholds: a write that does not fit
// flushes first, one at least as large as the capacity goes straight through).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug)]
pub(crate) struct LazyBufWriter<W> {
    inner: W,
    buf: Vec<u8>,
    /// Bytes of `buf` already written to `inner` by a flush that has not finished.
    written: usize,
    capacity: usize,
}

impl<W: AsyncWrite + Unpin> LazyBufWriter<W> {
    pub(crate) fn with_capacity(capacity: usize, inner: W) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            written: 0,
            capacity,
        }
    }

    pub(crate) fn get_ref(&self) -> &W {
        &self.inner
    }

    pub(crate) fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The writer, dropping anything still buffered (as tokio's `into_inner`).
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }

    fn room(&self) -> usize {
        self.capacity - self.buf.len()
    }

    fn push(&mut self, data: &[u8]) {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.capacity);
        }
        self.buf.extend_from_slice(data);
    }

    fn flush_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut ret = Ok(());
        while self.written < self.buf.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..])) {
                Ok(0) => {
                    ret = Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write the buffered data",
                    ));
                    break;
                }
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    ret = Err(e);
                    break;
                }
            }
        }
        if self.written == self.buf.len() {
            // All out: the buffer goes back to the allocator.
            self.buf = Vec::new();
        } else if self.written > 0 {
            self.buf.drain(..self.written);
        }
        self.written = 0;
        Poll::Ready(ret)
    }
}

impl<W: AsyncWrite + Unpin> LazyBufWriter<W> {
    /// Write the buffered bytes and then `data` in vectored writes until the buffer is out:
    /// `Some(n)` once the buffer and `n > 0` bytes of `data` are written, `None` when the
    /// buffer is out (or was empty) and nothing of `data` is yet.
    fn write_behind_buffer(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<Option<usize>>> {
        while self.written < self.buf.len() {
            let pending = self.buf.len() - self.written;
            let slices = [IoSlice::new(&self.buf[self.written..]), IoSlice::new(data)];
            match ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &slices)) {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write the buffered data",
                    )))
                }
                Ok(n) if n <= pending => self.written += n,
                Ok(n) => {
                    self.buf = Vec::new();
                    self.written = 0;
                    return Poll::Ready(Ok(Some(n - pending)));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(None))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for LazyBufWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        if data.len() > me.room() {
            if data.len() >= me.capacity && me.inner.is_write_vectored() {
                // What is buffered (a response head, say) and a write too large to buffer (its
                // body) go out in one system call, where tokio's flushes and then writes.
                if let Some(accepted) = ready!(me.write_behind_buffer(cx, data))? {
                    return Poll::Ready(Ok(accepted));
                }
            }
            ready!(me.flush_buf(cx))?;
        }
        if data.len() >= me.capacity {
            Pin::new(&mut me.inner).poll_write(cx, data)
        } else {
            me.push(data);
            Poll::Ready(Ok(data.len()))
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        let total = bufs.iter().fold(0usize, |n, b| n.saturating_add(b.len()));
        if me.inner.is_write_vectored() {
            if total > me.room() {
                ready!(me.flush_buf(cx))?;
            }
            if total >= me.capacity {
                return Pin::new(&mut me.inner).poll_write_vectored(cx, bufs);
            }
            for b in bufs {
                me.push(b);
            }
            return Poll::Ready(Ok(total));
        }
        // Without vectored writes underneath: buffer what fits, as tokio's does.
        let mut bufs = bufs;
        while bufs.first().is_some_and(|b| b.is_empty()) {
            bufs = &bufs[1..];
        }
        let Some(first) = bufs.first() else {
            return Poll::Ready(Ok(0));
        };
        if first.len() > me.room() {
            ready!(me.flush_buf(cx))?;
        }
        if first.len() >= me.capacity {
            return Pin::new(&mut me.inner).poll_write(cx, first);
        }
        me.push(first);
        let mut written = first.len();
        for b in &bufs[1..] {
            if b.len() > me.room() {
                break;
            }
            me.push(b);
            written += b.len();
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.flush_buf(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.flush_buf(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<W: AsyncRead + Unpin> AsyncRead for LazyBufWriter<W> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}
