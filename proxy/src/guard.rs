//! Request-head checks done before routing: smuggling vectors and header size limits.
//!
//! pingora already refuses malformed request lines and headers (400), differing duplicate
//! `Content-Length`s, and a final `Transfer-Encoding` other than chunked. It accepts a request
//! carrying both `Content-Length` and `Transfer-Encoding` (dropping the former, as RFC 9112
//! 6.3 permits); an edge node refuses it (RFC 9112 6.1 allows either), as do HAProxy and
//! Varnish, because an origin behind it might frame the body the other way.

use crate::errors::LocalResponse;
use breakwater_config::ServerSettings;
use pingora::protocols::http::ServerSession as HttpSession;
use pingora::proxy::Session;

/// Why a request is refused before routing.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("both Content-Length and Transfer-Encoding")]
    AmbiguousFraming,
    #[error("request head of {0} bytes over the limit")]
    HeadersTooLarge(usize),
}

impl Refusal {
    pub fn response(&self) -> LocalResponse {
        match self {
            Refusal::AmbiguousFraming => LocalResponse::error(400),
            Refusal::HeadersTooLarge(_) => LocalResponse::error(431),
        }
    }
}

pub fn check(session: &Session, server: &ServerSettings) -> Result<(), Refusal> {
    let size = match session.as_downstream() {
        HttpSession::H1(h1) => {
            let raw = h1.get_headers_raw_bytes();
            if has_both_framing_headers(&raw) {
                return Err(Refusal::AmbiguousFraming);
            }
            raw.len()
        }
        _ => {
            let req = session.req_header();
            req.uri.to_string().len()
                + req
                    .headers
                    .iter()
                    .map(|(n, v)| n.as_str().len() + v.len() + 4)
                    .sum::<usize>()
        }
    };
    if size > server.max_header_bytes {
        return Err(Refusal::HeadersTooLarge(size));
    }
    Ok(())
}

/// Scan the raw head for both framing headers (pingora has already removed one of them).
fn has_both_framing_headers(raw: &[u8]) -> bool {
    let mut cl = false;
    let mut te = false;
    for line in raw.split(|&b| b == b'\n').skip(1) {
        let name = line.split(|&b| b == b':').next().unwrap_or(&[]);
        cl |= name.eq_ignore_ascii_case(b"content-length");
        te |= name.eq_ignore_ascii_case(b"transfer-encoding");
    }
    cl && te
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_both_framing_headers() {
        assert!(has_both_framing_headers(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(!has_both_framing_headers(
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n"
        ));
        assert!(!has_both_framing_headers(
            b"GET /content-length HTTP/1.1\r\nX-Transfer-Encoding: a\r\n\r\n"
        ));
    }
}
