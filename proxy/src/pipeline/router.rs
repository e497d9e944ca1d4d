//! Route matching, compiled once per config generation.
//!
//! Order (documented in the README): the request's host picks a host group — an exact host
//! first, then the longest matching `*.suffix`, then the routes that name no host. Within the
//! group, routes are tried in file order; the first whose path and method match wins. There
//! is no fallback to a less specific group, as with nginx `server_name` and Envoy virtual hosts.

use breakwater_config::{HostPattern, PathMatch, Route};
use http::Method;
use std::collections::HashMap;

/// Routes by host group, each carrying what a match yields (`T`: the route's plan).
#[derive(Debug)]
pub struct Router<T> {
    routes: Vec<Candidate<T>>,
    /// Indexes into `routes`, in file order, per exact host.
    exact: HashMap<String, Vec<usize>>,
    /// `(".example.com", routes)`, longest suffix first.
    suffix: Vec<(String, Vec<usize>)>,
    default: Vec<usize>,
}

#[derive(Debug)]
struct Candidate<T> {
    path: PathMatch,
    /// Empty: any method.
    methods: Vec<Method>,
    target: T,
}

impl<T> Router<T> {
    /// Index `routes` (in file order), each with what a match on it yields.
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a Route, T)>) -> Self {
        let mut r = Router {
            routes: Vec::new(),
            exact: HashMap::new(),
            suffix: Vec::new(),
            default: Vec::new(),
        };
        for (i, (route, target)) in routes.into_iter().enumerate() {
            if route.hosts.is_empty() {
                r.default.push(i);
            }
            for h in &route.hosts {
                match h {
                    HostPattern::Exact(name) => r.exact.entry(name.clone()).or_default().push(i),
                    HostPattern::Suffix(s) => match r.suffix.iter_mut().find(|(x, _)| x == s) {
                        Some((_, v)) => v.push(i),
                        None => r.suffix.push((s.clone(), vec![i])),
                    },
                }
            }
            r.routes.push(Candidate {
                path: route.path.clone(),
                methods: route.methods.clone(),
                target,
            });
        }
        r.suffix.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        r
    }

    /// What the request's route yields, if a route matches. `host` is lower-case, without
    /// port.
    pub fn find(&self, host: &str, path: &str, method: &Method) -> Option<&T> {
        let group = self
            .exact
            .get(host)
            .or_else(|| {
                self.suffix
                    .iter()
                    .find(|(s, _)| host.len() > s.len() && host.ends_with(s.as_str()))
                    .map(|(_, v)| v)
            })
            .unwrap_or(&self.default);
        group.iter().map(|&i| &self.routes[i]).find_map(|c| {
            let matches =
                c.path.matches(path) && (c.methods.is_empty() || c.methods.contains(method));
            matches.then_some(&c.target)
        })
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
