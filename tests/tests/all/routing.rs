//! Routing: host groups, path and method matching, local answers, header edits and the
//! forwarding headers: one story, told over HTTP/1.1, HTTP/2 (h2c) and HTTP/3.

use breakwater_tests as support;

use support::certs::Ca;
use support::{Client, Node, Origin};

fn config(api: &Origin, web: &Origin) -> String {
    format!(
        r#"
listeners:
  - name: web
    address: 127.0.0.1:0
    h2c: true
  - name: tls
    address: 127.0.0.1:0
    protocol: https
    http3: true
    certificates:
      - {{ names: [api.example.com, "*.example.com", example.net], cert: "{{DIR}}/c.pem", key: "{{DIR}}/c.key" }}
forwarding:
  forwarded: true
pools:
  api: {{ endpoints: ["{api}"] }}
  web: {{ endpoints: ["{web}"] }}
routes:
  - name: api-exact-host
    match: {{ hosts: [api.example.com], path_prefix: /v1/, methods: [GET, HEAD] }}
    pool: api
    request_headers:
      set: {{ x-edge: breakwater }}
      remove: [x-secret]
    response_headers:
      add: {{ x-route: api }}
      remove: [x-origin-internal]
  - name: wildcard
    match: {{ hosts: ["*.example.com"] }}
    pool: web
    response_headers:
      set: {{ x-route: wildcard }}
  - name: moved
    match: {{ path: /old }}
    redirect: {{ location: "https://example.org/new", status: 308 }}
  - name: teapot
    match: {{ path: /tea }}
    respond:
      status: 418
      headers: {{ content-type: text/plain }}
      body: "short and stout"
  - name: default
    match: {{ path_prefix: /static/ }}
    pool: web
"#,
        api = api.addr,
        web = web.addr
    )
}

/// `listener` is `web` (plain) or `tls` (HTTPS and HTTP/3).
async fn story(client: Client, expect_version: http::Version, ca: &Ca, listener: &str) {
    let api = Origin::start(std::sync::Arc::new(|_s: &support::origin::Seen| {
        support::origin::Action::Respond {
            status: 200,
            headers: vec![
                ("x-origin-internal".into(), "secret".into()),
                ("connection".into(), "x-hop".into()),
                ("x-hop".into(), "1".into()),
            ],
            body: "api".into(),
        }
    }))
    .await;
    let web = Origin::echo().await;
    let dir = tempfile::tempdir().unwrap();
    ca.leaf(
        dir.path(),
        "c",
        &["api.example.com", "*.example.com", "example.net"],
    );
    let node = Node::start_in(dir, &config(&api, &web), &[]);
    let addr = node.addr(listener);
    let proto = if listener == "tls" { "https" } else { "http" };

    // Exact host + prefix + method: forwarded to api, with edits both ways.
    let req = http::Request::get(format!("http://{addr}/v1/users?id=7"))
        .header("host", "API.example.com:8080")
        .header("x-secret", "hunter2")
        .header("x-forwarded-for", "203.0.113.9")
        .body(Default::default())
        .unwrap();
    let r = client.send(req).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.version, expect_version);
    assert_eq!(r.text(), "api");
    assert_eq!(r.header("x-route"), Some("api"));
    assert_eq!(
        r.header("x-origin-internal"),
        None,
        "removed by response_headers"
    );
    assert_eq!(r.header("x-hop"), None, "named in Connection: hop-by-hop");
    assert!(r.header("via").unwrap().ends_with("breakwater"));
    let seen = api.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.uri, "/v1/users?id=7");
    assert_eq!(s.header("x-edge").as_deref(), Some("breakwater"));
    assert_eq!(s.header("x-secret"), None);
    assert_eq!(
        s.header("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(s.header("x-forwarded-proto").as_deref(), Some(proto));
    assert!(s
        .header("forwarded")
        .unwrap()
        .starts_with(&format!("for=127.0.0.1;proto={proto}")));
    assert!(s.header("via").unwrap().ends_with("breakwater"));

    // Same host, method not allowed by the route: no fallback to other groups -> 404.
    let req = http::Request::post(format!("http://{addr}/v1/users"))
        .header("host", "api.example.com")
        .body(Default::default())
        .unwrap();
    assert_eq!(client.send(req).await.unwrap().status, 404);

    // Wildcard group.
    let r = client.get(addr, "shop.example.com", "/v1/users").await;
    assert_eq!((r.status, r.header("x-route")), (200, Some("wildcard")));
    assert_eq!(web.hits(), 1);

    // The default group: redirect, fixed response, prefix route, and no route.
    let r = client.get(addr, "example.net", "/old").await;
    assert_eq!(
        (r.status, r.header("location")),
        (308, Some("https://example.org/new"))
    );
    let r = client.get(addr, "example.net", "/tea").await;
    assert_eq!((r.status, r.text().as_str()), (418, "short and stout"));
    let r = client.get(addr, "example.net", "/static/app.js").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "origin /static/app.js")
    );
    let r = client.get(addr, "example.net", "/elsewhere").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no route"));
    assert_eq!(api.hits(), 1, "local answers never reach an origin");
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_over_http1() {
    story(Client::h1(), http::Version::HTTP_11, &Ca::new(), "web").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_over_h2c() {
    story(Client::h2c(), http::Version::HTTP_2, &Ca::new(), "web").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_over_http3() {
    let ca = Ca::new();
    story(Client::h3(ca.roots()), http::Version::HTTP_3, &ca, "tls").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_large_bodies_both_ways() {
    let origin = Origin::start(std::sync::Arc::new(|s: &support::origin::Seen| {
        support::origin::Action::ok(s.body.clone())
    }))
    .await;
    let node = Node::start(&format!(
        "listeners: [{{ name: web, address: 127.0.0.1:0 }}]\npools: {{ p: {{ endpoints: [\"{}\"] }} }}\nroutes: [{{ pool: p }}]\n",
        origin.addr
    ));
    let body: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let req = http::Request::post(format!("http://{}/upload", node.addr("web")))
        .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
        .unwrap();
    let r = Client::h1().send(req).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "body changed on the way");
}

/// A node with one HTTP/1.1 listener, `web`, the top-level keys `settings` (YAML lines), and
/// `routes` (YAML list items) to the pool `origin`, an echo origin.
async fn node_before_echo(settings: &str, routes: &str) -> (Node, Origin) {
    let origin = Origin::echo().await;
    let node = Node::start(&format!(
        r#"
{settings}
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
pools: {{ origin: {{ endpoints: ["{}"] }} }}
routes:{routes}
"#,
        origin.addr
    ));
    (node, origin)
}

/// An absolute-form target (`GET http://a.test/x HTTP/1.1`, which every server must accept,
/// RFC 9112 3.2.2) reaches the origin in origin form (RFC 9112 3.2.1), with the target's
/// authority as its Host, and is routed by that authority.
#[tokio::test]
async fn an_absolute_form_target_reaches_the_origin_in_origin_form() {
    let (node, origin) = node_before_echo(
        "",
        "
  - { match: { hosts: [a.test] }, pool: origin }
  - { respond: { status: 404 } }",
    )
    .await;
    let web = node.addr("web");
    for (request, uri) in [
        (
            "GET http://a.test/x?q=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
            "/x?q=1",
        ),
        (
            "GET http://A.test?q=2 HTTP/1.1\r\nHost: A.test\r\nConnection: close\r\n\r\n",
            "/?q=2",
        ),
        // HTTP/1.0 may leave Host out: the target names it.
        ("GET http://a.test/y HTTP/1.0\r\n\r\n", "/y"),
    ] {
        let out = support::client::raw(web, request.as_bytes()).await;
        assert_eq!(
            support::client::raw_status(&out),
            Some(200),
            "{request}: {out}"
        );
        let seen = origin.seen();
        let s = seen.last().unwrap();
        assert_eq!(s.uri, uri, "{request}");
        assert!(
            s.header("host").unwrap().eq_ignore_ascii_case("a.test"),
            "{request}: {:?}",
            s.header("host")
        );
    }
    assert_eq!(origin.seen().len(), 3);
}

/// RFC 9110 7.6.2: an OPTIONS or TRACE request's `Max-Forwards` is decremented on the way to
/// the origin, and one of 0 is answered here, as its final recipient: OPTIONS with 200, TRACE
/// with the request head as received (`message/http`) less the fields carrying credentials.
/// And OPTIONS of the server as a whole (`OPTIONS *`, RFC 9112 3.2.4) is answered here too.
#[tokio::test]
async fn max_forwards_is_decremented_and_zero_is_answered_here() {
    let (node, origin) = node_before_echo("", "\n  - { pool: origin }").await;
    let web = node.addr("web");
    let raw = |request: &'static str| support::client::raw(web, request.as_bytes());

    let out =
        raw("OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 3\r\nConnection: close\r\n\r\n").await;
    assert_eq!(support::client::raw_status(&out), Some(200), "{out}");
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("max-forwards").as_deref(), Some("2"));

    let out =
        raw("OPTIONS /x HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n").await;
    assert_eq!(support::client::raw_status(&out), Some(200), "{out}");
    let out = raw("TRACE /t?q=1 HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nX-Probe: yes\r\nCookie: secret=1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(support::client::raw_status(&out), Some(200), "{out}");
    let lower = out.to_ascii_lowercase();
    assert!(lower.contains("content-type: message/http"), "{out}");
    let echoed = &out[out.find("\r\n\r\n").unwrap() + 4..];
    assert!(echoed.starts_with("TRACE /t?q=1 HTTP/1.1\r\n"), "{echoed}");
    assert!(echoed.contains("x-probe: yes\r\n"), "{echoed}");
    assert!(
        !echoed.contains("secret"),
        "credentials are left out: {echoed}"
    );
    assert_eq!(origin.seen().len(), 1, "neither reached the origin");

    // The asterisk form: OPTIONS of the server as a whole, answered here; no other method.
    let out = raw("OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert_eq!(support::client::raw_status(&out), Some(200), "{out}");
    let out = raw("GET * HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(support::client::raw_status(&out), Some(400), "{out}");
    assert_eq!(origin.seen().len(), 1, "none reached the origin");

    // Other methods ignore it (RFC 9110 7.6.2).
    let out =
        raw("GET /g HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n").await;
    assert_eq!(support::client::raw_status(&out), Some(200), "{out}");
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].header("max-forwards").as_deref(), Some("0"));
}

/// Fields that describe the client's connection to this node stay here (RFC 9110 7.6.1): the
/// standard hop-by-hop set and whatever `Connection` names; `TE: trailers` goes on (the one TE
/// value a proxy may pass: the client accepts trailers, which gRPC origins require), and
/// end-to-end fields are untouched.
#[tokio::test]
async fn hop_by_hop_request_fields_stay_here_but_te_trailers_goes_on() {
    let (node, origin) = node_before_echo("", "\n  - { pool: origin }").await;
    let web = node.addr("web");
    let out = support::client::raw(
        web,
        b"GET /h HTTP/1.1\r\nHost: a\r\nConnection: x-hop-req, close\r\nX-Hop-Req: 1\r\n\
          Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers, deflate;q=0.5\r\n\
          X-End: kept\r\n\r\n",
    )
    .await;
    assert_eq!(support::client::raw_status(&out), Some(200), "{out}");
    let out = support::client::raw(
        web,
        b"GET /h2 HTTP/1.1\r\nHost: a\r\nTE: deflate\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(support::client::raw_status(&out), Some(200), "{out}");
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    for gone in ["x-hop-req", "keep-alive", "proxy-connection"] {
        assert_eq!(seen[0].header(gone), None, "{gone}");
    }
    assert_eq!(seen[0].header("te").as_deref(), Some("trailers"));
    assert_eq!(seen[0].header("x-end").as_deref(), Some("kept"));
    assert_eq!(
        seen[1].header("te"),
        None,
        "a TE without trailers stays here"
    );
}

/// Responses the node makes itself (a route's own answer, no route's 404) name it, `Server:
/// breakwater`, unless `server.server_header: false`; what the origin answers is passed on
/// with the origin's (here none).
#[tokio::test]
async fn answers_made_here_name_breakwater_unless_told_not_to() {
    let routes = "
  - { match: { hosts: [a], path_prefix: /o }, pool: origin }
  - { match: { hosts: [a] }, respond: { body: hi } }";
    for (server, named) in [("{}", true), ("{ server_header: false }", false)] {
        let (node, _origin) = node_before_echo(&format!("server: {server}"), routes).await;
        let web = node.addr("web");
        let c = Client::h1();
        let own = c.get(web, "a", "/x").await;
        let unrouted = c.get(web, "b", "/x").await;
        let proxied = c.get(web, "a", "/o").await;
        assert_eq!(
            (own.status, unrouted.status, proxied.status),
            (200, 404, 200)
        );
        let expected = named.then_some("breakwater");
        assert_eq!(own.header("server"), expected, "server: {server}");
        assert_eq!(unrouted.header("server"), expected, "server: {server}");
        assert_eq!(proxied.header("server"), None, "server: {server}");
        // A request pingora's parser refuses (an obsolete line folding) is answered before
        // Breakwater sees it: named the same (it said `Server: Pingora`).
        let refused = support::client::raw(
            web,
            b"GET /x HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
        )
        .await;
        assert_eq!(
            support::client::raw_status(&refused),
            Some(400),
            "{refused}"
        );
        let named_as = refused
            .lines()
            .find_map(|l| {
                l.strip_prefix("Server:")
                    .or_else(|| l.strip_prefix("server:"))
            })
            .map(str::trim);
        assert_eq!(named_as, expected, "server: {server}: {refused}");
    }
}
