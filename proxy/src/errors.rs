//! Responses Breakwater writes itself, and the one mapping from errors to HTTP statuses.

use breakwater_config::HeaderEdits;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

/// A response generated at the edge (no route, redirect, fixed response, error).
pub struct LocalResponse {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    edits: Option<HeaderEdits>,
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
            edits: None,
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

    pub fn fixed(status: StatusCode, headers: &[(HeaderName, HeaderValue)], body: Bytes) -> Self {
        Self {
            status,
            headers: headers.to_vec(),
            body,
            edits: None,
        }
    }

    /// Apply a route's response header edits too.
    pub fn with_edits(mut self, edits: &HeaderEdits) -> Self {
        if !edits.is_empty() {
            self.edits = Some(edits.clone());
        }
        self
    }
}

impl LocalResponse {
    /// The response head, and the body unless `head_only`.
    pub fn into_parts(self, head_only: bool) -> pingora::Result<(ResponseHeader, Option<Bytes>)> {
        let mut resp = ResponseHeader::build(self.status, Some(self.headers.len() + 3))?;
        for (n, v) in self.headers {
            resp.append_header(n, v)?;
        }
        resp.insert_header(http::header::CONTENT_LENGTH, self.body.len())?;
        if let Some(edits) = &self.edits {
            crate::headers::edit_response(&mut resp, edits);
        }
        let body = (!head_only && !self.body.is_empty()).then_some(self.body);
        Ok((resp, body))
    }
}

/// Write `r` to the client; `HEAD` gets the headers only.
pub async fn respond(session: &mut Session, r: LocalResponse) -> pingora::Result<()> {
    let head_only = session.req_header().method == http::Method::HEAD;
    let (head, body) = r.into_parts(head_only)?;
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

/// The status a failed request gets. 0 means the client is gone and gets nothing.
///
/// - an explicit status (e.g. from a guard) is kept;
/// - an origin that does not answer in time: 504;
/// - any other origin failure (refused, reset, no endpoint, bad response): 502;
/// - a malformed request: 400; a client that went away: nothing;
/// - anything else is ours: 500.
pub fn status_for(e: &Error) -> u16 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let up = |t| *Error::new_up(t);
        assert_eq!(status_for(&up(ErrorType::ConnectTimedout)), 504);
        assert_eq!(status_for(&up(ErrorType::ReadTimedout)), 504);
        assert_eq!(status_for(&up(ErrorType::ConnectRefused)), 502);
        assert_eq!(status_for(&up(ErrorType::InvalidHTTPHeader)), 502);
        assert_eq!(
            status_for(&Error::new_down(ErrorType::InvalidHTTPHeader)),
            400
        );
        assert_eq!(status_for(&Error::new_down(ErrorType::ConnectionClosed)), 0);
        assert_eq!(status_for(&Error::new(ErrorType::HTTPStatus(431))), 431);
        assert_eq!(status_for(&Error::new(ErrorType::ConnectNoRoute)), 502);
    }
}
