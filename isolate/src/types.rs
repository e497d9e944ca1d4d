//! The isolate's public data types: what the proxy passes in and gets back, validated.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// A request as a filter sees it, borrowed from the proxy's own request for one call. A
/// filter of interface 0.2 reads it through methods (only what it asks for crosses into the
/// guest); one of 0.1 gets all of it lowered into its memory as the WIT `request` record.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: Headers<'a>,
    pub client_addr: &'a str,
    pub route: &'a str,
}

/// Header pairs, name and value, in order.
pub type HeaderPairs<'a> = [(&'a str, &'a [u8])];

/// Headers as the host holds them: the proxy's map, or a list (tests, benchmarks).
#[derive(Clone, Copy)]
pub enum Headers<'a> {
    Map(&'a HeaderMap),
    List(&'a HeaderPairs<'a>),
}

impl<'a> From<&'a HeaderMap> for Headers<'a> {
    fn from(map: &'a HeaderMap) -> Self {
        Headers::Map(map)
    }
}

impl<'a> From<&'a HeaderPairs<'a>> for Headers<'a> {
    fn from(list: &'a HeaderPairs<'a>) -> Self {
        Headers::List(list)
    }
}

impl<'a> Headers<'a> {
    /// The map or the list, as two options (one of them `None`) whose iterators chain.
    fn parts(&self) -> (Option<&'a HeaderMap>, Option<&'a HeaderPairs<'a>>) {
        match *self {
            Headers::Map(m) => (Some(m), None),
            Headers::List(l) => (None, Some(l)),
        }
    }

    /// Every `(name, value)` pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + use<'a> {
        let (map, list) = self.parts();
        let from_map = map
            .into_iter()
            .flat_map(|m| m.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
        from_map.chain(list.into_iter().flat_map(|l| l.iter().copied()))
    }

    /// Every value of `name` (matched without regard to case), in order.
    pub fn get_all<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        let (map, list) = self.parts();
        // `HeaderMap` takes a name in any case (it lowers it to look it up).
        let from_map = map
            .into_iter()
            .flat_map(move |m| m.get_all(name).iter().map(HeaderValue::as_bytes));
        let from_list = list.into_iter().flat_map(move |l| {
            l.iter()
                .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        });
        from_map.chain(from_list)
    }
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
