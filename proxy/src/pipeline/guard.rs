//! Request-head checks done before routing: smuggling vectors and header size limits.
//!
//! pingora already refuses malformed request lines and headers (400), differing duplicate
//! `Content-Length`s, and a final `Transfer-Encoding` other than chunked. It accepts a request
//! carrying both `Content-Length` and `Transfer-Encoding` (dropping the former, as RFC 9112
//! 6.3 permits); an edge node refuses it (RFC 9112 6.1 allows either), as do HAProxy and
//! Varnish, because an origin behind it might frame the body the other way.
//!
//! A transfer coding other than chunked before the final chunked (`gzip, chunked`), which
//! pingora accepts and then drops when it frames the body anew for the origin (the origin got
//! the coded bytes as if plain), gets 501 (RFC 9112 6.1: a coding the server does not
//! understand), as from nginx.
//!
//! Also refused with 400, because an origin or another hop could read the head differently:
//! line ends that are a bare LF (RFC 9112 2.2 lets a recipient accept them; an edge does not),
//! an HTTP/1.1 request without exactly one `Host` (RFC 9112 3.2: MUST be 400), a `Host` that
//! is not a valid authority, and an absolute-form target whose authority differs from `Host`.

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
    #[error("a line of the request head ends in a bare LF")]
    BareLf,
    #[error("request target not in origin, absolute, authority or asterisk form")]
    BadTarget,
    #[error("HTTP/1.1 request without a Host header")]
    MissingHost,
    #[error("more than one Host header")]
    MultipleHosts,
    #[error("Host is not a valid authority")]
    BadHost,
    #[error("absolute-form target and Host name different authorities")]
    HostMismatch,
    #[error("a transfer coding other than chunked")]
    UnknownTransferCoding,
}

/// Check the request head before routing; the refusal maps to its status in `errors`.
pub fn check(session: &Session, server: &ServerSettings) -> Result<(), Refusal> {
    let size = match session.as_downstream() {
        HttpSession::H1(h1) => {
            let raw = h1.get_headers_raw_bytes();
            if has_both_framing_headers(&raw) {
                return Err(Refusal::AmbiguousFraming);
            }
            if has_bare_lf(&raw) {
                return Err(Refusal::BareLf);
            }
            if has_control_in_target(&raw)
                || crate::frontend::clients::request_line_invalid(h1.stream())
            {
                return Err(Refusal::BadTarget);
            }
            check_host(session.req_header())?;
            if has_unknown_transfer_coding(session.req_header()) {
                return Err(Refusal::UnknownTransferCoding);
            }
            raw.len()
        }
        _ => {
            let req = session.req_header();
            // RFC 9113 8.3.1: a Host that names another authority than :authority is malformed.
            if let (Some(host), Some(authority)) =
                (req.headers.get(http::header::HOST), req.uri.authority())
            {
                if !host
                    .as_bytes()
                    .eq_ignore_ascii_case(authority.as_str().as_bytes())
                {
                    return Err(Refusal::HostMismatch);
                }
            }
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

/// Whether `Transfer-Encoding` names a coding other than chunked (RFC 9112 7: Breakwater
/// decodes none of the others, so it cannot find where such a body ends or pass it on as
/// sent).
fn has_unknown_transfer_coding(req: &pingora::http::RequestHeader) -> bool {
    req.headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(b"chunked"))
}

/// RFC 9112 3.2: exactly one valid `Host` in HTTP/1.1 (HTTP/1.0 may omit it), matching the
/// authority of an absolute-form target.
fn check_host(req: &pingora::http::RequestHeader) -> Result<(), Refusal> {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::MultipleHosts);
    }
    let Some(host) = host else {
        return match req.version {
            http::Version::HTTP_10 | http::Version::HTTP_09 => Ok(()),
            _ => Err(Refusal::MissingHost),
        };
    };
    let host: http::uri::Authority = host
        .to_str()
        .ok()
        .and_then(|h| h.parse().ok())
        .filter(|a: &http::uri::Authority| !a.as_str().contains('@'))
        .ok_or(Refusal::BadHost)?;
    match req.uri.authority() {
        Some(target) if !target.as_str().eq_ignore_ascii_case(host.as_str()) => {
            Err(Refusal::HostMismatch)
        }
        _ => Ok(()),
    }
}

/// Whether the request line's target is empty or holds a space or control character (RFC
/// 3986 allows none). pingora's strict parse refuses such bytes (patched in
/// `proxy/vendor/pingora-core`: it used to percent-encode them); this catches what its
/// lenient parse lets through, such as two spaces before the target.
fn has_control_in_target(raw: &[u8]) -> bool {
    let line = &raw[..memchr::memchr(b'\n', raw).unwrap_or(raw.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (Some(first), Some(last)) = (memchr::memchr(b' ', line), memchr::memrchr(b' ', line))
    else {
        return false;
    };
    // Exactly `method SP target SP version` (RFC 9112 3): a parser that splits on runs of
    // whitespace would read a different target than one that does not.
    if first + 1 >= last {
        return true;
    }
    let target = &line[first + 1..last];
    // One of the four forms of RFC 9112 3.2 (pingora turns a leading space into `%20`).
    let form_ok = target.starts_with(b"/")
        || target == b"*"
        || target.windows(3).any(|w| w == b"://")
        || line.starts_with(b"CONNECT ");
    !form_ok || target.iter().any(|&b| b < 0x21 || b == 0x7f)
}

/// Whether a line of the head ends in LF without CR.
fn has_bare_lf(raw: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', raw).any(|i| i == 0 || raw[i - 1] != b'\r')
}

/// Scan the raw head for both framing headers (pingora has already removed one of them).
fn has_both_framing_headers(raw: &[u8]) -> bool {
    let mut cl = false;
    let mut te = false;
    // Each line after the request line: only one starting with `c` or `t` can be either.
    for start in memchr::memchr_iter(b'\n', raw).map(|i| i + 1) {
        let line = &raw[start..];
        match line.first().map(u8::to_ascii_lowercase) {
            Some(b'c') => cl |= is_field(line, b"content-length"),
            Some(b't') => te |= is_field(line, b"transfer-encoding"),
            _ => {}
        }
    }
    cl && te
}

/// Whether `line` is a field named `name` (any case), its colon right after the name.
fn is_field(line: &[u8], name: &[u8]) -> bool {
    line.len() > name.len()
        && line[..name.len()].eq_ignore_ascii_case(name)
        && line[name.len()] == b':'
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
        assert!(has_both_framing_headers(
            b"POST / HTTP/1.1\r\ntransfer-encoding:chunked\r\nCONTENT-LENGTH: 3\r\n\r\n"
        ));
        assert!(!has_both_framing_headers(
            b"POST / HTTP/1.1\r\nContent-Length : 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(!has_both_framing_headers(
            b"POST / HTTP/1.1\r\nContent-Lengthy: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
    }

    #[test]
    fn finds_control_characters_in_the_target() {
        assert!(has_control_in_target(b"GET /a\x00b HTTP/1.1\r\n"));
        assert!(has_control_in_target(b"GET /a\tb HTTP/1.1\r\n"));
        assert!(has_control_in_target(b"GET  / HTTP/1.1\r\n"));
        assert!(has_control_in_target(b"GET %20/ HTTP/1.1\r\n"));
        assert!(!has_control_in_target(b"OPTIONS * HTTP/1.1\r\n"));
        assert!(!has_control_in_target(b"GET http://a/b HTTP/1.1\r\n"));
        assert!(!has_control_in_target(
            b"GET /a%00b HTTP/1.1\r\nX: \x01\r\n"
        ));
    }

    #[test]
    fn finds_bare_line_feeds() {
        assert!(has_bare_lf(b"GET / HTTP/1.1\nHost: a\r\n\r\n"));
        assert!(has_bare_lf(b"GET / HTTP/1.1\r\nHost: a\n\r\n"));
        assert!(!has_bare_lf(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    }
}
