//! Routes served by a `wasi:http` handler component instead of an origin pool.
//!
//! The request body streams into the guest while it works on its answer; once the response
//! head is set, the rest of the request body (bounded by the component's `max_body_bytes`)
//! is handed over without waiting on the guest, and the response body streams back to the
//! client chunk by chunk. A body the guest has already finished when its head arrives (the
//! common small answer) goes out with its head, framed by a `Content-Length`, in one write.

use crate::pipeline::errors::EdgeError;
use crate::pipeline::{Protocol, Scheme};
use breakwater_isolate::{Handler, RequestBody, ResponseBody};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;

/// Who the request is for, as the handler is told.
pub struct Target<'a> {
    pub scheme: Scheme,
    /// The request's host, lower-cased; empty when it named none.
    pub host: &'a str,
    /// Added as `X-Request-Id` when the client sent none.
    pub request_id: &'a str,
}

/// The request as the handler sees it: absolute URI, end-to-end headers, the request id.
fn request(head: &RequestHeader, target: &Target<'_>) -> http::request::Builder {
    let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = if target.host.is_empty() {
        "localhost"
    } else {
        target.host
    };
    let mut b = http::Request::builder()
        .method(head.method.clone())
        .uri(format!("{}://{authority}{path}", target.scheme.as_str()));
    for (name, value) in head.headers.iter() {
        if crate::pipeline::headers::is_hop_by_hop(name) || name == HOST {
            continue;
        }
        b = b.header(name, value);
    }
    if !head.headers.contains_key("x-request-id") {
        b = b.header("x-request-id", target.request_id);
    }
    b
}

/// Call `handler` for the request in `session` and wait for its response head.
///
/// Errors: `Component` when the handler failed, `RequestBodyTooLarge` past `max_body_bytes`,
/// `Proxy` when reading the request body failed (client gone, malformed body).
pub async fn call(
    session: &mut Session,
    handler: &Handler,
    target: &Target<'_>,
    max_body_bytes: usize,
) -> Result<http::Response<ResponseBody>, EdgeError> {
    let builder = request(session.req_header(), target);
    let mut sender = None;
    let body = if session.is_body_empty() {
        RequestBody::empty()
    } else {
        let (tx, body) = RequestBody::channel();
        sender = Some(tx);
        body
    };
    let req = builder.body(body).map_err(|e| {
        EdgeError::Proxy(pingora::Error::because(
            pingora::ErrorType::InvalidHTTPHeader,
            "request for a handler",
            e,
        ))
    })?;
    if sender.is_some() && waits_for_continue(session.req_header()) {
        session
            .write_continue_response()
            .await
            .map_err(EdgeError::Proxy)?;
    }
    let response = handler.handle(req);
    tokio::pin!(response);
    let mut forward = BodyForwarder {
        sender,
        received: 0,
        max: max_body_bytes,
    };
    let head = loop {
        if forward.sender.is_none() {
            break response.await;
        }
        tokio::select! {
            head = &mut response => break head,
            chunk = session.read_request_body() => forward.take(chunk)?,
        }
    };
    let head = head.map_err(EdgeError::Component)?;
    // Hand over the rest of the body without waiting on the guest, which may be busy
    // writing its response and will read it later (or never: then it is dropped).
    while forward.sender.is_some() {
        forward.take(session.read_request_body().await)?;
    }
    Ok(head)
}

/// Whether the client waits for `100 Continue` before it sends the body (RFC 9110 10.1.1).
/// The node is the origin server of a handler route, so it must answer the expectation
/// before reading the body: a client that waits would otherwise wait until it gives up
/// waiting (curl: 1 s; some clients for ever). HTTP/1.0 clients' expectations are ignored.
fn waits_for_continue(head: &RequestHeader) -> bool {
    head.version >= http::Version::HTTP_11
        && head
            .headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Passes request body chunks to the guest, within the body limit.
struct BodyForwarder {
    /// `None` once the body has ended.
    sender: Option<tokio::sync::mpsc::UnboundedSender<Bytes>>,
    received: usize,
    max: usize,
}

impl BodyForwarder {
    fn take(&mut self, chunk: pingora::Result<Option<Bytes>>) -> Result<(), EdgeError> {
        match chunk {
            Ok(Some(chunk)) => {
                self.received += chunk.len();
                if self.received > self.max {
                    return Err(EdgeError::RequestBodyTooLarge {
                        limit_bytes: self.max,
                    });
                }
                if let Some(tx) = &self.sender {
                    let _ = tx.send(chunk);
                }
                Ok(())
            }
            Ok(None) => {
                self.sender = None;
                Ok(())
            }
            Err(e) => Err(EdgeError::Proxy(e)),
        }
    }
}

/// The response head for the client: the guest's status and end-to-end headers.
pub fn response_head(
    parts: &http::response::Parts,
    protocol: Protocol,
    length: Option<usize>,
) -> pingora::Result<ResponseHeader> {
    let mut head = ResponseHeader::build(parts.status, Some(parts.headers.len() + 1))?;
    for (name, value) in parts.headers.iter() {
        if crate::pipeline::headers::is_hop_by_hop(name) {
            continue;
        }
        head.append_header(name.clone(), value.clone())?;
    }
    if !head.headers.contains_key(CONTENT_LENGTH) {
        match length {
            Some(length) => head.insert_header(CONTENT_LENGTH, length)?,
            // No length known: HTTP/1.1 streams it chunked (HTTP/2 frames it by itself).
            None if !protocol.frames_bodies() => {
                head.insert_header(TRANSFER_ENCODING, "chunked")?
            }
            None => {}
        }
    }
    Ok(head)
}

/// The most of a finished body sent with its head in one write.
const WHOLE_BODY_MAX: usize = 64 * 1024;

/// A response body as far as the guest has written it when its head arrives.
pub enum Ready {
    /// All of it (at most [`WHOLE_BODY_MAX`]).
    Whole(Bytes),
    /// The chunks read so far, and the rest to stream.
    Partial(Vec<Bytes>, ResponseBody),
}

/// Take what the guest has already written of `body`, without waiting for more.
pub fn ready_body(mut body: ResponseBody) -> Result<Ready, EdgeError> {
    use futures::FutureExt;
    let mut read: Vec<Bytes> = Vec::new();
    let mut size = 0;
    while size <= WHOLE_BODY_MAX {
        match body.chunk().now_or_never() {
            Some(Some(chunk)) => {
                let chunk = chunk.map_err(EdgeError::Component)?;
                size += chunk.len();
                read.push(chunk);
            }
            Some(None) => {
                return Ok(Ready::Whole(match read.len() {
                    0 => Bytes::new(),
                    1 => read.pop().unwrap_or_default(),
                    _ => Bytes::from(read.concat()),
                }))
            }
            None => break,
        }
    }
    Ok(Ready::Partial(read, body))
}

/// Stream the guest's body to the client, after the chunks already `read`; returns the
/// bytes sent.
pub async fn stream_body(
    session: &mut Session,
    read: Vec<Bytes>,
    mut body: ResponseBody,
) -> pingora::Result<usize> {
    let mut sent = 0;
    for chunk in read {
        sent += chunk.len();
        session.write_response_body(Some(chunk), false).await?;
    }
    while let Some(chunk) = body.chunk().await {
        let chunk: Bytes = chunk.map_err(|e| {
            pingora::Error::because(pingora::ErrorType::InternalError, "handler body", e)
        })?;
        sent += chunk.len();
        session.write_response_body(Some(chunk), false).await?;
    }
    session.write_response_body(None, true).await?;
    Ok(sent)
}
