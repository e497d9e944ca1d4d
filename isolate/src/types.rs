//! The isolate's public data types: what the proxy passes in and gets back, validated.

use http::{HeaderName, HeaderValue, StatusCode};
use wasmtime::component::{ComponentType, Lower};

/// A request as a filter sees it; borrowed from the proxy's own request and lowered into the
/// guest as the WIT `request` record without an intermediate copy.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct Request<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a [u8])],
    #[component(name = "client-addr")]
    pub client_addr: &'a str,
    pub route: &'a str,
}

/// Header edits, applied in the order remove, set, add.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Edits {
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Added after any existing values (the WIT record calls it `append`).
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl Edits {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// `on-request` said: go on, with these changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ForwardEdits {
    pub edits: Edits,
    pub path: Option<String>,
    pub query: Option<String>,
    pub pool: Option<String>,
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
}

/// `on-request` said: answer with this.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectResponse {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

/// The decision of a filter's `on-request`.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestDecision {
    Continue(ForwardEdits),
    Respond(DirectResponse),
}
