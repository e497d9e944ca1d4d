//! Route matching, compiled once per config generation.
//!
//! Order (documented in the README): the request's host picks a host group — an exact host
//! first, then the longest matching `*.suffix`, then the routes that name no host. Within the
//! group, routes are tried in file order; the first whose path and method match wins. There
//! is no fallback to a less specific group, as with nginx `server_name` and Envoy virtual hosts.
//!
//! No lookup scans the routes: hosts and suffixes are hash lookups (a suffix per label of the
//! request's host, longest first), exact paths too, and path prefixes sit in a radix tree
//! walked along the request's path; the match is the earliest route in file order among the
//! few those lookups yield. So the cost of a lookup follows the length of the host and path,
//! not the number of routes.

use breakwater_config::{HostPattern, PathMatch, Route};
use http::Method;
use std::collections::HashMap;

/// Routes by host group, each carrying what a match yields (`T`: the route's plan).
#[derive(Debug)]
pub struct Router<T> {
    routes: Vec<Candidate<T>>,
    /// Per exact host.
    exact: HashMap<String, Group>,
    /// Per `*.suffix`, keyed by the suffix with its leading dot (`.example.com`).
    suffix: HashMap<String, Group>,
    default: Group,
}

#[derive(Debug)]
struct Candidate<T> {
    /// Empty: any method.
    methods: Vec<Method>,
    target: T,
}

/// The routes of one host group, indexed by path. Route numbers are file order.
#[derive(Debug, Default)]
struct Group {
    exact: HashMap<String, Vec<u32>>,
    prefixes: Radix,
}

impl Group {
    fn insert(&mut self, path: &PathMatch, route: u32) {
        match path {
            PathMatch::Exact(p) => self.exact.entry(p.clone()).or_default().push(route),
            PathMatch::Prefix(p) => self.prefixes.insert(p.as_bytes(), route),
        }
    }
}

/// A radix tree of path prefixes: each node's routes have as prefix the bytes on the way to
/// it.
#[derive(Debug, Default)]
struct Radix {
    routes: Vec<u32>,
    /// Edges by distinct first byte.
    children: Vec<(Box<[u8]>, Radix)>,
}

impl Radix {
    fn insert(&mut self, key: &[u8], route: u32) {
        if key.is_empty() {
            self.routes.push(route);
            return;
        }
        let Some(at) = self.children.iter().position(|(l, _)| l[0] == key[0]) else {
            let mut leaf = Radix::default();
            leaf.routes.push(route);
            self.children.push((key.into(), leaf));
            return;
        };
        let (label, child) = &mut self.children[at];
        let common = label.iter().zip(key).take_while(|(a, b)| a == b).count();
        if common < label.len() {
            // Split the edge: the shared part leads to a new node holding the old child.
            let old = std::mem::take(child);
            let mut mid = Radix::default();
            mid.children.push((label[common..].into(), old));
            *child = mid;
            *label = key[..common].into();
        }
        child.insert(&key[common..], route);
    }

    /// Every route list along `path`, shortest prefix first.
    fn walk<'a>(&'a self, mut path: &[u8], mut each: impl FnMut(&'a [u32])) {
        let mut node = self;
        loop {
            if !node.routes.is_empty() {
                each(&node.routes);
            }
            let Some(&first) = path.first() else { return };
            let Some((label, child)) = node.children.iter().find(|(l, _)| l[0] == first) else {
                return;
            };
            match path.strip_prefix(&**label) {
                Some(rest) => path = rest,
                None => return,
            }
            node = child;
        }
    }
}

impl<T> Router<T> {
    /// Index `routes` (in file order), each with what a match on it yields.
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a Route, T)>) -> Self {
        let mut r = Router {
            routes: Vec::new(),
            exact: HashMap::new(),
            suffix: HashMap::new(),
            default: Group::default(),
        };
        for (i, (route, target)) in routes.into_iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 routes");
            if route.hosts.is_empty() {
                r.default.insert(&route.path, i);
            }
            for h in &route.hosts {
                let group = match h {
                    HostPattern::Exact(name) => r.exact.entry(name.clone()).or_default(),
                    HostPattern::Suffix(s) => r.suffix.entry(s.clone()).or_default(),
                };
                group.insert(&route.path, i);
            }
            r.routes.push(Candidate {
                methods: route.methods.clone(),
                target,
            });
        }
        r
    }

    /// The host group of `host`: exact, else the longest `*.suffix` (a proper suffix at a
    /// label boundary), else the default.
    fn group(&self, host: &str) -> &Group {
        if let Some(g) = self.exact.get(host) {
            return g;
        }
        if !self.suffix.is_empty() {
            // Dots after the first byte, left to right: longest suffix first.
            for (at, _) in host.match_indices('.').filter(|(at, _)| *at > 0) {
                if let Some(g) = self.suffix.get(&host[at..]) {
                    return g;
                }
            }
        }
        &self.default
    }

    /// What the request's route yields, if a route matches. `host` is lower-case, without
    /// port.
    pub fn find(&self, host: &str, path: &str, method: &Method) -> Option<&T> {
        let group = self.group(host);
        let mut best: Option<u32> = None;
        let mut consider = |routes: &[u32]| {
            // In file order: the first whose method matches is this list's earliest match.
            let first = routes.iter().copied().find(|&i| {
                let methods = &self.routes[i as usize].methods;
                methods.is_empty() || methods.contains(method)
            });
            if let Some(i) = first {
                best = Some(best.map_or(i, |b| b.min(i)));
            }
        };
        if let Some(routes) = group.exact.get(path) {
            consider(routes);
        }
        group.prefixes.walk(path.as_bytes(), &mut consider);
        best.map(|i| &self.routes[i as usize].target)
    }
}

/// The host a request is for: URI authority (HTTP/2, absolute-form) or `Host`, lower-cased,
/// without port or trailing dot.
pub fn request_host<'a>(uri: &'a http::Uri, host_header: Option<&'a str>) -> String {
    let raw = uri.host().or(host_header).unwrap_or("");
    let without_port = if raw.starts_with('[') {
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(yaml: &str) -> Vec<Route> {
        let text = format!("listeners: [{{name: web, address: \"127.0.0.1:1\"}}]\nroutes:\n{yaml}");
        breakwater_config::parse(&text, std::path::Path::new("t.yaml"))
            .unwrap()
            .routes
    }

    #[test]
    fn host_groups_then_file_order() {
        let rs = routes(
            r#"
  - { name: any, respond: { body: any } }
  - { name: wild-api, match: { hosts: ["*.example.com"], path_prefix: /api }, respond: { body: x } }
  - { name: wild, match: { hosts: ["*.example.com"] }, respond: { body: x } }
  - { name: deep, match: { hosts: ["*.eu.example.com"] }, respond: { body: x } }
  - { name: www-get, match: { hosts: [www.example.com], path: /, methods: [GET] }, respond: { body: x } }
"#,
        );
        let r = Router::new(rs.iter().map(|route| (route, route.name.as_str())));
        let name = |host: &str, path: &str, m: Method| r.find(host, path, &m).copied();
        assert_eq!(name("other.org", "/x", Method::GET), Some("any"));
        assert_eq!(
            name("a.example.com", "/api/v1", Method::GET),
            Some("wild-api")
        );
        assert_eq!(name("a.example.com", "/", Method::GET), Some("wild"));
        assert_eq!(name("x.eu.example.com", "/api", Method::GET), Some("deep"));
        assert_eq!(name("example.com", "/", Method::GET), Some("any"));
        assert_eq!(name("www.example.com", "/", Method::GET), Some("www-get"));
        assert_eq!(name("www.example.com", "/", Method::POST), None);
    }

    /// The indexes give what the definition gives (host group, then the first route in file
    /// order whose path and method match), on random route sets and requests.
    #[test]
    fn lookups_agree_with_a_scan_in_file_order() {
        use rand::{Rng, SeedableRng};
        let seed = rand::random::<u64>();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let hosts = ["a.example.com", "b.a.example.com", "example.com", "x.org"];
        let suffixes = ["*.example.com", "*.a.example.com", "*.org"];
        let paths = ["/", "/a", "/ab", "/abc", "/a/b", "/b", "/api/v1", "/api"];
        for _ in 0..50 {
            let mut yaml = String::new();
            for i in 0..rng.random_range(1..30) {
                let mut matching = Vec::new();
                match rng.random_range(0..4) {
                    0 => {}
                    1 => matching.push(format!("hosts: [{}]", hosts[rng.random_range(0..4)])),
                    2 => {
                        matching.push(format!("hosts: [\"{}\"]", suffixes[rng.random_range(0..3)]))
                    }
                    _ => matching.push(format!(
                        "hosts: [{}, \"{}\"]",
                        hosts[rng.random_range(0..4)],
                        suffixes[rng.random_range(0..3)]
                    )),
                }
                let path = paths[rng.random_range(0..paths.len())];
                match rng.random_range(0..3) {
                    0 => matching.push(format!("path: {path}")),
                    1 => matching.push(format!("path_prefix: {path}")),
                    _ => {}
                }
                if rng.random_bool(0.3) {
                    matching.push("methods: [POST]".into());
                }
                yaml += &format!(
                    "  - {{ name: r{i}, match: {{ {} }}, respond: {{ body: x }} }}\n",
                    matching.join(", ")
                );
            }
            let rs = routes(&yaml);
            let r = Router::new(rs.iter().map(|route| (route, route.name.as_str())));
            for host in hosts.iter().chain(&["other.net", "deep.b.a.example.com"]) {
                let exact = rs
                    .iter()
                    .any(|rt| rt.hosts.contains(&HostPattern::Exact(host.to_string())));
                let suffix = (!exact)
                    .then(|| {
                        rs.iter()
                            .flat_map(|rt| &rt.hosts)
                            .filter(|h| matches!(h, HostPattern::Suffix(_)) && h.matches(host))
                            .max_by_key(|h| match h {
                                HostPattern::Suffix(s) | HostPattern::Exact(s) => s.len(),
                            })
                    })
                    .flatten();
                let in_group = |rt: &Route| match (exact, suffix) {
                    (true, _) => rt.hosts.contains(&HostPattern::Exact(host.to_string())),
                    (false, Some(s)) => rt.hosts.contains(s),
                    (false, None) => rt.hosts.is_empty(),
                };
                for path in paths.iter().chain(&["/abcd", "/c", "/api/v2"]) {
                    for m in [Method::GET, Method::POST] {
                        let want = rs
                            .iter()
                            .find(|rt| {
                                in_group(rt)
                                    && rt.path.matches(path)
                                    && (rt.methods.is_empty() || rt.methods.contains(&m))
                            })
                            .map(|rt| rt.name.as_str());
                        assert_eq!(
                            r.find(host, path, &m).copied(),
                            want,
                            "seed {seed}: {host} {path} {m}\n{yaml}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn host_is_normalised() {
        let uri: http::Uri = "/".parse().unwrap();
        assert_eq!(
            request_host(&uri, Some("WWW.Example.COM.:8080")),
            "www.example.com"
        );
        assert_eq!(request_host(&uri, Some("[::1]:443")), "[::1]");
        let abs: http::Uri = "http://Foo.org:81/x".parse().unwrap();
        assert_eq!(request_host(&abs, Some("bar.org")), "foo.org");
    }
}
