//! The bodies of a handler's request and response, as the proxy feeds and reads them.

use crate::error::IsolateError;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The body of a request to a handler: empty, whole, or fed chunk by chunk by the caller.
pub struct RequestBody(pub(super) ChannelBody);

impl RequestBody {
    pub fn empty() -> Self {
        Self::from_bytes(Bytes::new())
    }

    pub fn from_bytes(bytes: Bytes) -> Self {
        let (tx, body) = Self::channel();
        if !bytes.is_empty() {
            let _ = tx.send(bytes);
        }
        body
    }

    /// A body fed through the returned sender; dropping the sender ends it. Unbounded: the
    /// caller bounds the bytes it sends (the route's body limit), so that feeding the body
    /// never waits on a guest that is busy writing its response.
    pub fn channel() -> (tokio::sync::mpsc::UnboundedSender<Bytes>, Self) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (tx, Self(ChannelBody(rx)))
    }
}

pub(super) struct ChannelBody(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// The body a handler streams back.
pub struct ResponseBody {
    pub(super) body: Frames,
    pub(super) handler: std::sync::Arc<str>,
}

pub(super) enum Frames {
    /// WASI 0.2: what the guest had written when its head was sent, then straight from its
    /// outgoing body.
    Wasi02(Prefetched),
    /// WASI 0.3: pumped by the task running the guest.
    Wasi03(tokio::sync::mpsc::Receiver<Result<Bytes, String>>),
}

/// A WASI 0.2 body: the chunks gathered with its head (an error ends them), then the rest.
pub(super) struct Prefetched {
    ready: std::collections::VecDeque<Result<Bytes, String>>,
    /// `None` once the body ended among the gathered chunks.
    rest: Option<HyperOutgoingBody>,
}

impl Prefetched {
    /// The chunks of `body` ready now, up to `limit` bytes.
    pub(super) fn gather(mut body: HyperOutgoingBody, limit: usize, cx: &mut Context<'_>) -> Self {
        use http_body::Body;
        let mut ready = std::collections::VecDeque::new();
        let mut bytes = 0;
        while bytes < limit {
            match Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(Some(frame)) => match chunk_of(frame) {
                    Some(Ok(data)) => {
                        bytes += data.len();
                        ready.push_back(Ok(data));
                    }
                    Some(Err(e)) => {
                        ready.push_back(Err(e));
                        return Self { ready, rest: None };
                    }
                    None => {}
                },
                Poll::Ready(None) => return Self { ready, rest: None },
                Poll::Pending => break,
            }
        }
        Self {
            ready,
            rest: Some(body),
        }
    }

    /// The next chunk: a gathered one, else the guest's next.
    async fn next(&mut self) -> Option<Result<Bytes, String>> {
        if let Some(next) = self.ready.pop_front() {
            return Some(next);
        }
        let body = self.rest.as_mut()?;
        loop {
            if let Some(chunk) = chunk_of(body.frame().await?) {
                return Some(chunk);
            }
        }
    }
}

/// What a frame of a WASI 0.2 body gives its reader: a chunk, an error, or nothing (an empty
/// chunk, or trailers: skipped).
fn chunk_of<E: std::fmt::Debug>(
    frame: Result<http_body::Frame<Bytes>, E>,
) -> Option<Result<Bytes, String>> {
    match frame {
        Ok(frame) => frame.into_data().ok().filter(|d| !d.is_empty()).map(Ok),
        Err(e) => Some(Err(format!("response body: {e:?}"))),
    }
}

impl ResponseBody {
    /// The next chunk; `None` at the end. Trailers are skipped.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, IsolateError>> {
        let next = match &mut self.body {
            Frames::Wasi02(body) => body.next().await?,
            Frames::Wasi03(rx) => rx.recv().await?,
        };
        Some(next.map_err(|reason| IsolateError::InvalidOutput {
            component: self.handler.to_string(),
            reason,
        }))
    }

    /// The whole body, up to `limit` bytes (more is an error).
    pub async fn collect(mut self, limit: usize) -> Result<Bytes, IsolateError> {
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = self.chunk().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > limit {
                return Err(IsolateError::InvalidOutput {
                    component: self.handler.to_string(),
                    reason: format!("response body over {limit} bytes"),
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }
}
