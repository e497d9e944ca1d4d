//! What goes wrong on the request path, the one mapping from failures to HTTP statuses
//! ([`EdgeError::status`], as linkerd2-proxy's `ServerRescue::rescue`), and the responses
//! Breakwater writes itself.

use crate::pipeline::guard::Refusal;
use breakwater_isolate::IsolateError;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

/// Why a request did not get the answer its route would give.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The request head was refused before routing (smuggling vectors, size limits).
    #[error("request refused: {0}")]
    Refused(#[from] Refusal),
    /// A component failed (a fail-closed filter, or a handler).
    #[error(transparent)]
    Component(IsolateError),
    /// The request body is larger than a handler or a fail-closed body filter takes.
    #[error("request body larger than {limit_bytes} bytes")]
    RequestBodyTooLarge { limit_bytes: usize },
    /// The response body is larger than a fail-closed response body filter takes.
    #[error("response body larger than {limit_bytes} bytes")]
    ResponseBodyTooLarge { limit_bytes: usize },
    /// A filter switched the request to a pool its route does not allow.
    #[error("filter {filter}: pool \"{pool}\" is not allowed on route {route}")]
    PoolNotAllowed {
        filter: String,
        pool: String,
        route: String,
    },
    /// pingora failed: reading from the client, or the exchange with the origin.
    #[error(transparent)]
    Proxy(Box<Error>),
}

impl EdgeError {
    /// The status the client gets. 0: the client is gone and gets nothing.
    pub fn status(&self) -> u16 {
        match self {
            EdgeError::Refused(Refusal::HeadersTooLarge(_)) => 431,
            EdgeError::Refused(Refusal::UnknownTransferCoding) => 501,
            EdgeError::Refused(_) => 400,
            EdgeError::Component(e) => match e {
                IsolateError::Deadline { .. } => 504,
                IsolateError::LimitReached { .. } | IsolateError::Instantiate { .. } => 503,
                _ => 500,
            },
            EdgeError::RequestBodyTooLarge { .. } => 413,
            EdgeError::ResponseBodyTooLarge { .. } => 502,
            EdgeError::PoolNotAllowed { .. } => 500,
            EdgeError::Proxy(e) => Self::status_of(e),
        }
    }

    /// The status for an error pingora reports (an `EdgeError` a phase returned comes back
    /// as `HTTPStatus` with its status):
    /// - an origin that does not answer in time: 504;
    /// - any other origin failure (refused, reset, no endpoint, bad response): 502;
    /// - a malformed request: 400; a client too slow: 408; a client that went away: 0;
    /// - anything else is ours: 500.
    pub fn status_of(e: &Error) -> u16 {
        use ErrorType::*;
        match e.etype() {
            HTTPStatus(code) => return *code,
            ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                return 504
            }
            _ => {}
        }
        match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => 0,
                ReadTimedout | WriteTimedout => 408,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => match e.etype() {
                ConnectNoRoute => 502,
                _ => 500,
            },
        }
    }

    /// As pingora's error, for a phase to return; `fail_to_proxy` answers with its status.
    pub fn into_pingora(self) -> Box<Error> {
        match self {
            EdgeError::Proxy(e) => e,
            e => Error::explain(ErrorType::HTTPStatus(e.status()), e.to_string()),
        }
    }

    /// A short, stable name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            EdgeError::Refused(_) => "refused",
            EdgeError::Component(e) => e.kind(),
            EdgeError::RequestBodyTooLarge { .. } | EdgeError::ResponseBodyTooLarge { .. } => {
                "body_too_large"
            }
            EdgeError::PoolNotAllowed { .. } => "pool_not_allowed",
            EdgeError::Proxy(_) => "proxy",
        }
    }
}

impl From<Box<Error>> for EdgeError {
    fn from(e: Box<Error>) -> Self {
        EdgeError::Proxy(e)
    }
}

/// A response generated at the edge (no route, redirect, fixed response, error).
#[derive(Clone, Debug)]
pub struct LocalResponse {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl LocalResponse {
    fn text(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            body: body.into(),
        }
    }

    pub fn no_route() -> Self {
        Self::text(
            StatusCode::NOT_FOUND,
            "404 Not Found: no route for this host and path\n",
        )
    }

    pub fn error(code: u16) -> Self {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let reason = status.canonical_reason().unwrap_or("Error");
        Self::text(status, format!("{} {reason}\n", status.as_u16()))
    }

    pub fn redirect(status: StatusCode, location: HeaderValue) -> Self {
        let mut r = Self::text(status, "");
        r.headers = vec![(http::header::LOCATION, location)];
        r
    }

    pub fn fixed(status: StatusCode, headers: Vec<(HeaderName, HeaderValue)>, body: Bytes) -> Self {
        Self {
            status,
            headers,
            body,
        }
    }

    /// The response head, and the body unless `head_only`; with `Server: breakwater` when
    /// `signed` (`server.server_header`) and the response names no server of its own.
    pub fn into_parts(
        self,
        head_only: bool,
        signed: bool,
    ) -> pingora::Result<(ResponseHeader, Option<Bytes>)> {
        let mut resp = ResponseHeader::build(self.status, Some(self.headers.len() + 4))?;
        let named = self.headers.iter().any(|(n, _)| n == http::header::SERVER);
        for (n, v) in self.headers {
            resp.append_header(n, v)?;
        }
        if signed && !named {
            resp.insert_header(http::header::SERVER, SERVER)?;
        }
        resp.insert_header(http::header::CONTENT_LENGTH, self.body.len())?;
        let body = (!head_only && !self.body.is_empty()).then_some(self.body);
        Ok((resp, body))
    }
}

/// What responses made here name as their server (`server.server_header`).
pub const SERVER_NAME: &str = "breakwater";
const SERVER: HeaderValue = HeaderValue::from_static(SERVER_NAME);

/// Write `r` to the client as it is, `signed` as [`LocalResponse::into_parts`] says; `HEAD`
/// gets the headers only.
pub async fn respond(session: &mut Session, r: LocalResponse, signed: bool) -> pingora::Result<()> {
    let head_only = session.req_header().method == http::Method::HEAD;
    let (head, body) = r.into_parts(head_only, signed)?;
    write(session, head, body).await
}

/// Write a response head and an optional body.
pub async fn write(
    session: &mut Session,
    head: ResponseHeader,
    body: Option<Bytes>,
) -> pingora::Result<()> {
    let end = body.is_none();
    session.write_response_header(Box::new(head), end).await?;
    if let Some(body) = body {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_statuses() {
        let up = |t| *Error::new_up(t);
        assert_eq!(EdgeError::status_of(&up(ErrorType::ConnectTimedout)), 504);
        assert_eq!(EdgeError::status_of(&up(ErrorType::ReadTimedout)), 504);
        assert_eq!(EdgeError::status_of(&up(ErrorType::ConnectRefused)), 502);
        assert_eq!(EdgeError::status_of(&up(ErrorType::InvalidHTTPHeader)), 502);
        let down = |t| *Error::new_down(t);
        assert_eq!(
            EdgeError::status_of(&down(ErrorType::InvalidHTTPHeader)),
            400
        );
        assert_eq!(EdgeError::status_of(&down(ErrorType::ConnectionClosed)), 0);
        assert_eq!(EdgeError::status_of(&down(ErrorType::ReadTimedout)), 408);
        assert_eq!(
            EdgeError::status_of(&Error::new(ErrorType::HTTPStatus(431))),
            431
        );
        assert_eq!(
            EdgeError::status_of(&Error::new(ErrorType::ConnectNoRoute)),
            502
        );
    }

    #[test]
    fn edge_statuses_survive_the_trip_through_pingora() {
        let component = |e| EdgeError::Component(e);
        let name = || "f".to_string();
        let cases = [
            (EdgeError::Refused(Refusal::HeadersTooLarge(1)), 431),
            (EdgeError::Refused(Refusal::BareLf), 400),
            (EdgeError::Refused(Refusal::UnknownTransferCoding), 501),
            (
                component(IsolateError::Deadline {
                    component: name(),
                    deadline_ms: 1,
                }),
                504,
            ),
            (
                component(IsolateError::LimitReached {
                    component: name(),
                    limit: 1,
                }),
                503,
            ),
            (
                component(IsolateError::InvalidOutput {
                    component: name(),
                    reason: "x".into(),
                }),
                500,
            ),
            (EdgeError::RequestBodyTooLarge { limit_bytes: 1 }, 413),
            (EdgeError::ResponseBodyTooLarge { limit_bytes: 1 }, 502),
            (
                EdgeError::PoolNotAllowed {
                    filter: name(),
                    pool: "p".into(),
                    route: "r".into(),
                },
                500,
            ),
        ];
        for (e, status) in cases {
            assert_eq!(e.status(), status, "{e}");
            assert_eq!(EdgeError::status_of(&e.into_pingora()), status);
        }
    }
}
