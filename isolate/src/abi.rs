//! The `breakwater:filter` types as they cross the component boundary (canonical ABI), and
//! their validation into the crate's public types. Requests are lowered from borrowed data,
//! so calling a filter copies each header once, into guest memory, and nowhere else.

use crate::types::{DirectResponse, Edits, ForwardEdits, RequestDecision};
use http::{HeaderName, HeaderValue, StatusCode};
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift, Lower, WasmList, WasmStr};

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

/// Interface 0.1's request record, made for one call of a request phase.
pub fn with_request_record<R>(
    req: &crate::types::Request<'_>,
    f: impl FnOnce(&RequestRecord<'_>) -> R,
) -> R {
    let list = HeaderList::new(req.headers);
    f(&RequestRecord::new(req, list.as_slice()))
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

/// A header list a guest returned (`list<tuple<string, list<u8>>>`), made into names and values
/// as it is lifted, straight from the guest's memory: no `String` and `Vec` per header in
/// between. `Err`: the first invalid header, for `validate`'s message.
pub struct HeaderListAbi(Result<Vec<(HeaderName, HeaderValue)>, BadHeader>);

/// A header a guest returned that is not valid HTTP.
pub enum BadHeader {
    Name(String),
    Value(HeaderName),
}

impl HeaderListAbi {
    /// From pairs held by the host (tests).
    #[cfg(test)]
    fn of<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        Self(pairs.into_iter().map(|(n, v)| header(n, v)).collect())
    }

    /// The list of `len` entries at `ptr` of the guest memory `cx` lifts from, checked as
    /// wasmtime checks a list: aligned, within memory, each entry's string and bytes too.
    fn lift(cx: &mut LiftContext<'_>, ptr: u32, len: u32) -> wasmtime::Result<Self> {
        /// An entry: a string and a `list<u8>`, each a pointer and a length.
        const ENTRY: usize = 16;
        let memory = cx.memory();
        let (ptr, len) = (ptr as usize, len as usize);
        if ptr % 4 != 0 {
            wasmtime::bail!("list pointer not aligned to 4");
        }
        let entries = len
            .checked_mul(ENTRY)
            .and_then(|n| n.checked_add(ptr))
            .and_then(|end| memory.get(ptr..end))
            .ok_or_else(|| wasmtime::format_err!("list pointer/length out of bounds of memory"))?;
        let mut list = Ok(Vec::with_capacity(len));
        for entry in entries.chunks_exact(ENTRY) {
            let name = WasmStr::linear_lift_from_memory(cx, InterfaceType::String, &entry[..8])?;
            let name = name.to_str_in(cx)?;
            let value = bytes_at(memory, word(entry, 8), word(entry, 12))?;
            // Every entry is lifted (and bounds-checked) even after an invalid one.
            if let Ok(headers) = &mut list {
                match header(&name, value) {
                    Ok(h) => headers.push(h),
                    Err(bad) => list = Err(bad),
                }
            }
        }
        Ok(Self(list))
    }
}

/// One header from a guest's name and value.
fn header(name: &str, value: &[u8]) -> Result<(HeaderName, HeaderValue), BadHeader> {
    let name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| BadHeader::Name(name.to_string()))?;
    match HeaderValue::from_bytes(value) {
        Ok(value) => Ok((name, value)),
        Err(_) => Err(BadHeader::Value(name)),
    }
}

/// The little-endian `u32` at `at` of `bytes`.
fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The `len` bytes at `ptr` of `memory` (a `list<u8>`: alignment 1).
fn bytes_at(memory: &[u8], ptr: u32, len: u32) -> wasmtime::Result<&[u8]> {
    let (ptr, len) = (ptr as usize, len as usize);
    ptr.checked_add(len)
        .and_then(|end| memory.get(ptr..end))
        .ok_or_else(|| wasmtime::format_err!("list pointer/length out of bounds of memory"))
}

/// The type a header list has in the WIT.
type HeaderListWit = [(WasmStr, WasmList<u8>)];

// SAFETY: `list<tuple<string, list<u8>>>`'s canonical ABI, the type check and representation
// of `[(WasmStr, WasmList<u8>)]`: a pointer and a length (two i32s flat, eight bytes aligned
// to 4 in memory) to entries of 16 bytes aligned to 4, each a string's and a byte list's
// pointer and length; `lift` checks what wasmtime's own lifting checks.
#[allow(unsafe_code)]
unsafe impl ComponentType for HeaderListAbi {
    type Lower = <HeaderListWit as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <HeaderListWit as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <HeaderListWit as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: as for `ComponentType` above.
#[allow(unsafe_code)]
unsafe impl Lift for HeaderListAbi {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        _ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        Self::lift(cx, src[0].get_u32(), src[1].get_u32())
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        _ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        Self::lift(cx, word(bytes, 0), word(bytes, 4))
    }
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct HeaderEditsAbi {
    set: HeaderListAbi,
    append: HeaderListAbi,
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
    response_headers: HeaderListAbi,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub struct ResponseAbi {
    status: u16,
    headers: HeaderListAbi,
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

fn headers(list: HeaderListAbi, what: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let list = list.0.map_err(|bad| match bad {
        BadHeader::Name(n) => format!("{what}: invalid header name {n:?}"),
        BadHeader::Value(n) => format!("{what}: invalid value for header {:?}", n.as_str()),
    })?;
    if let Some((n, _)) = list
        .iter()
        .find(|(n, _)| HOST_MANAGED.contains(&n.as_str()))
    {
        return Err(managed(n, what));
    }
    Ok(list)
}

fn managed(n: &HeaderName, what: &str) -> String {
    format!(
        "{what}: header {:?} is set by the host, not by filters",
        n.as_str()
    )
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
        return Err(managed(&name, what));
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
        fn headers(&mut self) -> HeaderListAbi {
            let pairs: Vec<(String, String)> = (0..self.next() % 4)
                .map(|_| (self.text(), self.text()))
                .collect();
            HeaderListAbi::of(pairs.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
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
