//! One HTTP/3 request stream as a pingora server session.
//!
//! pingora's `HttpSession::Custom` takes any protocol that can read a request head and body
//! and write a response, so an HTTP/3 request runs `HttpProxy::process_new_http` directly:
//! the same phases, cache, retries and upstream pools as HTTP/1.1 and HTTP/2, with no
//! second hop. The request head is presented as HTTP/2 (a multiplexed protocol whose
//! authority comes from `:authority`), which is how pingora frames it toward HTTP/1.1 and
//! HTTP/2 origins; the edge labels it HTTP/3 in metrics and logs.

use bytes::{Buf, Bytes};
use futures::{FutureExt, Stream};
use http::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::body_buffer::FixedBuffer;
use pingora::protocols::http::custom::server::Session as CustomSession;
use pingora::protocols::http::custom::CustomMessageWrite;
use pingora::protocols::http::HttpTask;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::Digest;
use pingora::{Error, ErrorType, OrErr, Result};
use std::time::Duration;
use sync_wrapper::SyncWrapper;

pub(super) type Stream3 = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// The most request body kept for a retry on another origin (pingora's own limit for HTTP/1
/// and HTTP/2 downstreams).
const RETRY_BUFFER: usize = 64 * 1024;

/// Headers that name a connection, not a message: malformed in an HTTP/3 request, never
/// sent in an HTTP/3 response (RFC 9114 section 4.2).
pub(super) const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// An HTTP/3 request stream driven by the pingora proxy.
pub(super) struct H3Session {
    request: RequestHeader,
    /// Only ever used through `&mut self`: `SyncWrapper` makes the stream `Sync` as pingora
    /// requires without a lock.
    stream: SyncWrapper<Stream3>,
    client: SocketAddr,
    /// A first body chunk read before the session started (see `H3Session::start`).
    first: Option<Bytes>,
    /// `Content-Length`, checked against the body that arrives (RFC 9114 section 4.1.2).
    declared: Option<u64>,
    body_done: bool,
    /// The request's trailers, read once its body is over; forwarded to the origin.
    trailers: Option<Box<HeaderMap>>,
    body_read: usize,
    body_sent: usize,
    retry: Option<FixedBuffer>,
    response: Option<Box<ResponseHeader>>,
    /// The response stream is finished (or reset): nothing more is written.
    ended: bool,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    drain_timeout: Option<Duration>,
}

impl H3Session {
    /// A session for `head` on `stream`, started once it is known whether the request has a
    /// body: that decides how it is framed toward an HTTP/1.1 origin (none, Content-Length
    /// or chunked). With a Content-Length (`declared`) it is known; otherwise a body that is
    /// already over (most GETs end with their head) is seen at once, and a client that has
    /// not sent the end yet is waited for, unless it waits for a 100 Continue itself.
    pub(super) async fn start(
        head: http::request::Parts,
        mut stream: Stream3,
        client: std::net::SocketAddr,
        declared: Option<u64>,
    ) -> std::result::Result<Self, h3::error::StreamError> {
        let (mut first, mut body_done, mut trailers) = (None, false, None);
        if declared.is_none() {
            let read = match stream.recv_data().now_or_never() {
                Some(read) => Some(read),
                None if head.headers.contains_key(http::header::EXPECT) => None,
                None => Some(stream.recv_data().await),
            };
            match read.transpose()? {
                Some(Some(mut chunk)) => first = Some(chunk.copy_to_bytes(chunk.remaining())),
                Some(None) => {
                    body_done = true;
                    trailers = stream.recv_trailers().await?.map(Box::new);
                }
                None => {}
            }
        }
        let mut request = RequestHeader::from(head);
        request.set_version(http::Version::HTTP_2);
        Ok(Self {
            request,
            stream: SyncWrapper::new(stream),
            client: SocketAddr::Inet(client),
            first,
            declared,
            body_done,
            trailers,
            body_read: 0,
            body_sent: 0,
            retry: None,
            response: None,
            ended: false,
            read_timeout: None,
            write_timeout: None,
            drain_timeout: None,
        })
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if let Some(chunk) = self.first.take() {
            return Ok(Some(chunk));
        }
        if self.body_done {
            return Ok(None);
        }
        const CONTEXT: &str = "while reading the HTTP/3 request body";
        let limit = self.read_timeout;
        let read = self.stream.get_mut().recv_data();
        let chunk = within(limit, read, ErrorType::ReadTimedout, CONTEXT)
            .await?
            .or_err(ErrorType::ReadError, CONTEXT)?;
        if chunk.is_none() {
            // A HEADERS frame after the data carries the request's trailers.
            const TRAILERS: &str = "while reading the HTTP/3 request trailers";
            let read = self.stream.get_mut().recv_trailers();
            let trailers = within(limit, read, ErrorType::ReadTimedout, TRAILERS)
                .await?
                .or_err(ErrorType::ReadError, TRAILERS)?;
            self.trailers = trailers.map(Box::new);
        }
        Ok(chunk.map(|mut c| c.copy_to_bytes(c.remaining())))
    }

    async fn write(&mut self, data: Bytes) -> Result<()> {
        const CONTEXT: &str = "while writing the HTTP/3 response body";
        let limit = self.write_timeout;
        let send = self.stream.get_mut().send_data(data);
        within(limit, send, ErrorType::WriteTimedout, CONTEXT)
            .await?
            .or_err(ErrorType::WriteError, CONTEXT)
    }

    async fn end_stream(&mut self) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        let stream = self.stream.get_mut();
        if !self.body_done {
            // The whole response is out before the whole request came in: tell the client
            // to stop sending (RFC 9114 section 4.1).
            stream.stop_sending(h3::error::Code::H3_NO_ERROR);
        }
        stream
            .finish()
            .await
            .or_err(ErrorType::WriteError, "while finishing the HTTP/3 response")
    }

    fn reset(&mut self) {
        if !self.ended {
            self.ended = true;
            self.stream
                .get_mut()
                .stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
        }
    }
}

/// `work`, cut after `limit` when there is one.
async fn within<T>(
    limit: Option<Duration>,
    work: impl std::future::Future<Output = T>,
    kind: ErrorType,
    context: &'static str,
) -> Result<T> {
    match limit {
        Some(t) => tokio::time::timeout(t, work).await.or_err(kind, context),
        None => Ok(work.await),
    }
}

impl Drop for H3Session {
    /// A response left unfinished is reset, so the client cannot take it for a whole one
    /// (a quinn stream dropped without a reset would be finished).
    fn drop(&mut self) {
        self.reset();
    }
}

#[async_trait::async_trait]
impl CustomSession for H3Session {
    fn req_header(&self) -> &RequestHeader {
        &self.request
    }

    fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.request
    }

    async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        let chunk = self.next_chunk().await?;
        match &chunk {
            Some(data) => {
                self.body_read += data.len();
                if let Some(retry) = self.retry.as_mut() {
                    retry.write_to_buffer(data);
                }
                if self.declared.is_some_and(|n| self.body_read as u64 > n) {
                    return Error::e_explain(
                        ErrorType::InvalidHTTPHeader,
                        "HTTP/3 request body longer than its Content-Length",
                    );
                }
            }
            None => {
                self.body_done = true;
                if self.declared.is_some_and(|n| self.body_read as u64 != n) {
                    return Error::e_explain(
                        ErrorType::InvalidHTTPHeader,
                        "HTTP/3 request body shorter than its Content-Length",
                    );
                }
            }
        }
        Ok(chunk)
    }

    async fn drain_request_body(&mut self) -> Result<()> {
        let limit = self.drain_timeout;
        let drain = async {
            while self.read_body_bytes().await?.is_some() {}
            Ok(())
        };
        let context = "while draining the HTTP/3 request body";
        within(limit, drain, ErrorType::ReadTimedout, context).await?
    }

    async fn write_response_header(
        &mut self,
        mut resp: Box<ResponseHeader>,
        end: bool,
    ) -> Result<()> {
        // h3 sends one response head per stream: interim (1xx) heads are left out, as
        // pingora does for HTTP/2.
        if self.ended || self.response.is_some() || resp.status.is_informational() {
            return Ok(());
        }
        resp.insert_header(
            http::header::DATE,
            pingora::protocols::http::date::get_cached_date(),
        )?;
        for name in CONNECTION_SPECIFIC {
            resp.remove_header(name);
        }
        let head = http::Response::from_parts(resp.as_owned_parts(), ());
        self.stream.get_mut().send_response(head).await.or_err(
            ErrorType::WriteError,
            "while writing the HTTP/3 response head",
        )?;
        self.response = Some(resp);
        if end {
            self.end_stream().await?;
        }
        Ok(())
    }

    async fn write_response_header_ref(&mut self, resp: &ResponseHeader, end: bool) -> Result<()> {
        self.write_response_header(Box::new(resp.clone()), end)
            .await
    }

    async fn write_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        if self.response.is_none() {
            return Error::e_explain(
                ErrorType::WriteError,
                "HTTP/3 response body before its head",
            );
        }
        if !data.is_empty() {
            let len = data.len();
            self.write(data).await?;
            self.body_sent += len;
        }
        if end {
            self.end_stream().await?;
        }
        Ok(())
    }

    async fn write_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        if self.ended || self.response.is_none() {
            return Ok(());
        }
        self.stream
            .get_mut()
            .send_trailers(trailers)
            .await
            .or_err(ErrorType::WriteError, "while writing HTTP/3 trailers")?;
        self.end_stream().await
    }

    async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        let mut end_stream = false;
        for task in tasks {
            end_stream = match task {
                HttpTask::Header(head, end) => {
                    self.write_response_header(head, end)
                        .await
                        .map_err(|e| e.into_down())?;
                    end
                }
                HttpTask::Body(data, end) => {
                    if let Some(data) = data {
                        self.write_body(data, false)
                            .await
                            .map_err(|e| e.into_down())?;
                    }
                    end
                }
                HttpTask::UpgradedBody(..) => {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        "upgraded body on an HTTP/3 stream",
                    );
                }
                HttpTask::Trailer(Some(trailers)) => {
                    self.write_trailers(*trailers)
                        .await
                        .map_err(|e| e.into_down())?;
                    true
                }
                HttpTask::Trailer(None) | HttpTask::Done => true,
                HttpTask::Failed(e) => return Err(e),
            } || end_stream;
        }
        if end_stream {
            self.end_stream().await.map_err(|e| e.into_down())?;
        }
        Ok(end_stream)
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    fn get_read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    fn get_write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    fn set_total_drain_timeout(&mut self, timeout: Option<Duration>) {
        self.drain_timeout = timeout;
    }

    fn get_total_drain_timeout(&self) -> Option<Duration> {
        self.drain_timeout
    }

    fn request_summary(&self) -> String {
        format!(
            "{} {}, Host: {}",
            self.request.method,
            self.request.uri.path_and_query().map_or("", |p| p.as_str()),
            self.request.uri.authority().map_or("", |a| a.as_str()),
        )
    }

    fn response_written(&self) -> Option<&ResponseHeader> {
        self.response.as_deref()
    }

    async fn shutdown(&mut self, _code: u32, _ctx: &str) {
        self.reset();
    }

    fn take_request_trailers(&mut self) -> Option<Box<HeaderMap>> {
        self.trailers.take()
    }

    fn is_body_done(&mut self) -> bool {
        self.body_done && self.first.is_none()
    }

    async fn finish(&mut self) -> Result<()> {
        if self.response.is_some() {
            self.end_stream().await
        } else {
            // No response at all: the stream is reset when the session is dropped.
            Ok(())
        }
    }

    fn is_body_empty(&mut self) -> bool {
        self.body_read == 0 && self.first.is_none() && (self.body_done || self.declared == Some(0))
    }

    async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        if no_body_expected || self.is_body_done() {
            // The client cannot be watched for going away once its request is in: the
            // response write fails then.
            std::future::pending::<()>().await;
        }
        self.read_body_bytes().await
    }

    fn body_bytes_sent(&self) -> usize {
        self.body_sent
    }

    fn body_bytes_read(&self) -> usize {
        self.body_read
    }

    fn digest(&self) -> Option<&Digest> {
        None
    }

    fn digest_mut(&mut self) -> Option<&mut Digest> {
        None
    }

    fn client_addr(&self) -> Option<&SocketAddr> {
        Some(&self.client)
    }

    fn server_addr(&self) -> Option<&SocketAddr> {
        None
    }

    fn pseudo_raw_h1_request_header(&self) -> Bytes {
        let mut head = self.request.clone();
        head.set_version(http::Version::HTTP_11);
        pingora::protocols::http::v1::client::http_req_header_to_wire(&head)
            .map(|b| b.freeze())
            .unwrap_or_default()
    }

    fn enable_retry_buffering(&mut self) {
        if self.retry.is_none() {
            self.retry = Some(FixedBuffer::new(RETRY_BUFFER));
        }
    }

    fn retry_buffer_truncated(&self) -> bool {
        self.retry.as_ref().is_some_and(|r| r.is_truncated())
    }

    fn get_retry_buffer(&self) -> Option<Bytes> {
        self.retry
            .as_ref()
            .filter(|r| !r.is_truncated())
            .and_then(|r| r.get_buffer())
    }

    async fn finish_custom(&mut self) -> Result<()> {
        Ok(())
    }

    fn take_custom_message_reader(
        &mut self,
    ) -> Option<Box<dyn Stream<Item = Result<Bytes>> + Unpin + Send + Sync + 'static>> {
        None
    }

    fn restore_custom_message_reader(
        &mut self,
        _reader: Box<dyn Stream<Item = Result<Bytes>> + Unpin + Send + Sync + 'static>,
    ) -> Result<()> {
        Ok(())
    }

    fn take_custom_message_writer(&mut self) -> Option<Box<dyn CustomMessageWrite>> {
        None
    }

    fn restore_custom_message_writer(
        &mut self,
        _writer: Box<dyn CustomMessageWrite>,
    ) -> Result<()> {
        Ok(())
    }
}
