//! The `breakwater:filter` types as they cross the component boundary (canonical ABI), and
//! their validation into the crate's public types. Requests are lowered from borrowed data,
//! so calling a filter copies each header once, into guest memory, and nowhere else.

use crate::types::{DirectResponse, Edits, ForwardEdits, RequestDecision};
use http::{HeaderName, HeaderValue, StatusCode};
use wasmtime::component::{ComponentType, Lift, Lower};

pub type HeaderRef<'a> = (&'a str, &'a [u8]);

/// Interface 0.1's `request` record, lowered whole into the guest from borrowed data.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct RequestRecord<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [HeaderRef<'a>],
    #[component(name = "client-addr")]
    pub client_addr: &'a str,
    pub route: &'a str,
}

/// The header list of a 0.1 record: the host's own list as it is, a map's pairs gathered.
pub enum HeaderList<'a> {
    Borrowed(&'a [HeaderRef<'a>]),
    Gathered(Vec<HeaderRef<'a>>),
}

impl<'a> HeaderList<'a> {
    pub fn new(headers: crate::types::Headers<'a>) -> Self {
        match headers {
            crate::types::Headers::List(l) => HeaderList::Borrowed(l),
            map => HeaderList::Gathered(map.iter().collect()),
        }
    }

    pub fn as_slice(&self) -> &[HeaderRef<'a>] {
        match self {
            HeaderList::Borrowed(l) => l,
            HeaderList::Gathered(v) => v,
        }
    }
}

/// Interface 0.1's records of a response phase, made for one call: `f` gets the request's
/// and the response head's.
pub fn with_response_records<R>(
    req: &crate::types::Request<'_>,
    status: u16,
    headers: crate::types::Headers<'_>,
    f: impl FnOnce(&RequestRecord<'_>, ResponseHeadView<'_>) -> R,
) -> R {
    let (list, resp_list) = (HeaderList::new(req.headers), HeaderList::new(headers));
    let head = ResponseHeadView {
        status,
        headers: resp_list.as_slice(),
    };
    f(&RequestRecord::new(req, list.as_slice()), head)
}

impl<'a> RequestRecord<'a> {
    pub fn new(req: &crate::types::Request<'a>, headers: &'a [HeaderRef<'a>]) -> Self {
        RequestRecord {
            method: req.method,
            scheme: req.scheme,
            authority: req.authority,
            path: req.path,
            query: req.query,
            headers,
            client_addr: req.client_addr,
            route: req.route,
        }
    }
}

#[derive(ComponentType, Lower)]
#[component(record)]
pub struct ResponseHeadView<'a> {
    pub status: u16,
    pub headers: &'a [HeaderRef<'a>],
}

type Headers = Vec<(String, Vec<u8>)>;

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct HeaderEditsAbi {
    set: Headers,
    append: Headers,
    remove: Vec<String>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct ForwardAbi {
    headers: HeaderEditsAbi,
    path: Option<String>,
    query: Option<String>,
    pool: Option<String>,
    #[component(name = "response-headers")]
    response_headers: Headers,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct ResponseAbi {
    status: u16,
    headers: Headers,
    body: Vec<u8>,
}

#[derive(ComponentType, Lift)]
#[component(variant)]
pub enum RequestActionAbi {
    #[component(name = "continue")]
    Continue(ForwardAbi),
    #[component(name = "respond")]
    Respond(ResponseAbi),
}

/// The decision of a body phase.
#[derive(ComponentType, Lift)]
#[component(variant)]
pub enum BodyActionAbi {
    #[component(name = "keep")]
    Keep,
    #[component(name = "replace")]
    Replace(Vec<u8>),
}

/// Constructed only by lifting from the guest.
#[allow(dead_code)]
#[derive(ComponentType, Lift, Clone, Copy, Debug)]
#[component(enum)]
#[repr(u8)]
pub enum Level {
    #[component(name = "debug")]
    Debug,
    #[component(name = "info")]
    Info,
    #[component(name = "warn")]
    Warn,
    #[component(name = "error")]
    Error,
}

fn headers(list: Headers, what: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    list.into_iter()
        .map(|(n, v)| {
            let name = header_name(&n, what)?;
            let value = HeaderValue::from_bytes(&v)
                .map_err(|_| format!("{what}: invalid value for header {n:?}"))?;
            Ok((name, value))
        })
        .collect()
}

/// Headers the host alone sets: message framing and connection management. A filter that
/// could set them could make the origin or the client read the message differently from the
/// proxy (request smuggling, response splitting), so they are invalid output.
const HOST_MANAGED: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn header_name(n: &str, what: &str) -> Result<HeaderName, String> {
    let name = HeaderName::from_bytes(n.as_bytes())
        .map_err(|_| format!("{what}: invalid header name {n:?}"))?;
    if HOST_MANAGED.contains(&name.as_str()) {
        return Err(format!(
            "{what}: header {n:?} is set by the host, not by filters"
        ));
    }
    Ok(name)
}

impl HeaderEditsAbi {
    pub fn validate(self) -> Result<Edits, String> {
        Ok(Edits {
            set: headers(self.set, "set")?,
            add: headers(self.append, "append")?,
            remove: self
                .remove
                .into_iter()
                .map(|n| header_name(&n, "remove"))
                .collect::<Result<_, _>>()?,
        })
    }
}

fn check_path(p: &str) -> Result<(), String> {
    let ok = p.starts_with('/')
        && p.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid path {p:?}"))
    }
}

fn check_query(q: &str) -> Result<(), String> {
    if q.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        Ok(())
    } else {
        Err(format!("invalid query {q:?}"))
    }
}

impl RequestActionAbi {
    pub fn validate(self) -> Result<RequestDecision, String> {
        match self {
            RequestActionAbi::Continue(f) => {
                if let Some(p) = &f.path {
                    check_path(p)?;
                }
                if let Some(q) = &f.query {
                    check_query(q)?;
                }
                Ok(RequestDecision::Continue(ForwardEdits {
                    edits: f.headers.validate()?,
                    path: f.path,
                    query: f.query,
                    pool: f.pool,
                    response_headers: headers(f.response_headers, "response-headers")?,
                }))
            }
            RequestActionAbi::Respond(r) => {
                let status = StatusCode::from_u16(r.status)
                    .ok()
                    .filter(|s| s.as_u16() >= 200)
                    .ok_or_else(|| format!("invalid status {}", r.status))?;
                Ok(RequestDecision::Respond(DirectResponse {
                    status,
                    headers: headers(r.headers, "respond")?,
                    body: r.body,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand::{Rng as _, SeedableRng};

    /// Seeded, so a failure reproduces.
    struct Rng(rand::rngs::StdRng);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0.random()
        }
        fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
            &from[self.0.random_range(0..from.len())]
        }
        fn text(&mut self) -> String {
            const PIECES: &[&str] = &[
                "x-a",
                "X-Upper",
                "content-length",
                "Transfer-Encoding",
                "host",
                ":path",
                "a b",
                "\r\n",
                "\n",
                "\0",
                "é",
                "/",
                "?",
                "#",
                "%00",
                "",
                "value",
                "\t",
                "\u{7f}",
                "=",
            ];
            (0..self.next() % 4).map(|_| *self.pick(PIECES)).collect()
        }
        fn headers(&mut self) -> Headers {
            (0..self.next() % 4)
                .map(|_| (self.text(), self.text().into_bytes()))
                .collect()
        }
    }

    /// Fuzz (stable harness) of the filter boundary: arbitrary guest output (names, values,
    /// statuses, paths, queries, pools) is either refused or valid HTTP that never touches
    /// framing; never a panic. `FUZZ_ITERATIONS` raises the count.
    #[test]
    fn arbitrary_guest_output_is_valid_or_refused() {
        let iterations: usize = std::env::var("FUZZ_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let mut rng = Rng(rand::rngs::StdRng::seed_from_u64(0xb0a7_f11e_7e55_0001));
        let framing = |h: &[(HeaderName, HeaderValue)]| {
            h.iter().any(|(n, _)| HOST_MANAGED.contains(&n.as_str()))
        };
        for _ in 0..iterations {
            let edits = HeaderEditsAbi {
                set: rng.headers(),
                append: rng.headers(),
                remove: (0..rng.next() % 3).map(|_| rng.text()).collect(),
            };
            let action = if rng.next().is_multiple_of(2) {
                let opt = |rng: &mut Rng| rng.next().is_multiple_of(2).then(|| rng.text());
                RequestActionAbi::Continue(ForwardAbi {
                    headers: edits,
                    path: opt(&mut rng),
                    query: opt(&mut rng),
                    pool: opt(&mut rng),
                    response_headers: rng.headers(),
                })
            } else {
                RequestActionAbi::Respond(ResponseAbi {
                    status: *rng.pick(&[0u16, 99, 100, 199, 200, 404, 599, 999, 1000, u16::MAX]),
                    headers: rng.headers(),
                    body: rng.text().into_bytes(),
                })
            };
            match action.validate() {
                Err(_) => {}
                Ok(RequestDecision::Continue(f)) => {
                    assert!(!framing(&f.edits.set) && !framing(&f.edits.add));
                    assert!(!framing(&f.response_headers));
                    assert!(f.path.as_deref().is_none_or(|p| p.starts_with('/')));
                }
                Ok(RequestDecision::Respond(r)) => {
                    assert!((200..=999).contains(&r.status.as_u16()));
                    assert!(!framing(&r.headers));
                }
            }
        }
    }
}
