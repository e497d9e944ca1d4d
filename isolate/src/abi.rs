//! The `breakwater:filter` types as they cross the component boundary (canonical ABI), and
//! their validation into the crate's public types. Requests are lowered from borrowed data,
//! so calling a filter copies each header once, into guest memory, and nowhere else.

use crate::types::{DirectResponse, Edits, ForwardEdits, RequestDecision};
use http::{HeaderName, HeaderValue, StatusCode};
use wasmtime::component::{ComponentType, Lift, Lower};

pub type HeaderRef<'a> = (&'a str, &'a [u8]);

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
            let name = HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| format!("{what}: invalid header name {n:?}"))?;
            let value = HeaderValue::from_bytes(&v)
                .map_err(|_| format!("{what}: invalid value for header {n:?}"))?;
            Ok((name, value))
        })
        .collect()
}

impl HeaderEditsAbi {
    pub fn validate(self) -> Result<Edits, String> {
        Ok(Edits {
            set: headers(self.set, "set")?,
            append: headers(self.append, "append")?,
            remove: self
                .remove
                .into_iter()
                .map(|n| {
                    HeaderName::from_bytes(n.as_bytes())
                        .map_err(|_| format!("remove: invalid header name {n:?}"))
                })
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
