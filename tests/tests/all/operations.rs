//! Operations: Prometheus metrics move by exactly what was served, the access log has a JSON
//! line per request, and the admin endpoints answer.

use breakwater_tests as support;

use std::collections::BTreeMap;
use support::{eventually, Client, Node, Origin};

/// Parse the text exposition format into `(name, labels) -> value`.
fn parse_metrics(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let rest = rest.strip_suffix('}').expect("closing brace");
                let labels = rest
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").expect("label");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (n.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        out.insert((name, labels), value);
    }
    out
}

fn get(
    m: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.get(&(name.to_string(), want)).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_exactly_what_was_served_and_the_access_log_has_every_request() {
    let origin = Origin::echo().await;
    let node = Node::start(&format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
pools: {{ web: {{ endpoints: ["{}"] }} }}
routes:
  - {{ name: api, match: {{ path_prefix: /api }}, pool: web }}
"#,
        origin.addr
    ));
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    let client = Client::h1();
    let before = parse_metrics(&client.get(admin, "a", "/metrics").await.text());
    for _ in 0..3 {
        assert_eq!(client.get(web, "a", "/api/x").await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(client.get(web, "a", "/nowhere").await.status, 404);
    }
    let req = http::Request::post(format!("http://{web}/api/y"))
        .header("x-request-id", "req-42")
        .body("data".into())
        .unwrap();
    assert_eq!(client.send(req).await.unwrap().status, 200);

    // Counters move after the response is written: wait for the last one to land.
    let client2 = client.clone();
    eventually(10, "all six requests counted", move || {
        let client = client2.clone();
        async move {
            let m = parse_metrics(&client.get(admin, "a", "/metrics").await.text());
            let post = [
                ("method", "POST"),
                ("protocol", "HTTP/1.1"),
                ("route", "api"),
                ("status_class", "2xx"),
            ];
            get(&m, "breakwater_requests_total", &post) == 1.0
        }
    })
    .await;
    let after = parse_metrics(&client.get(admin, "a", "/metrics").await.text());
    let delta = |labels: &[(&str, &str)]| {
        get(&after, "breakwater_requests_total", labels)
            - get(&before, "breakwater_requests_total", labels)
    };
    assert_eq!(
        delta(&[
            ("method", "GET"),
            ("protocol", "HTTP/1.1"),
            ("route", "api"),
            ("status_class", "2xx")
        ]),
        3.0
    );
    assert_eq!(
        delta(&[
            ("method", "GET"),
            ("protocol", "HTTP/1.1"),
            ("route", "-"),
            ("status_class", "4xx")
        ]),
        2.0
    );
    assert_eq!(
        get(
            &after,
            "breakwater_request_duration_seconds_count",
            &[("route", "api")]
        ),
        4.0
    );
    assert_eq!(
        get(
            &after,
            "breakwater_endpoint_available",
            &[("endpoint", &origin.addr.to_string()), ("pool", "web")]
        ),
        1.0
    );

    // The access log: one JSON line per request, with the request id passed to the origin.
    eventually(10, "six access log lines", || {
        let n = node.stdout_lines().len();
        async move { n >= 6 }
    })
    .await;
    let lines = node.stdout_lines();
    let entries: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let post = entries
        .iter()
        .find(|e| e["method"] == "POST")
        .expect("POST logged");
    assert_eq!(post["path"], "/api/y");
    assert_eq!(post["status"], 200);
    assert_eq!(post["route"], "api");
    assert_eq!(post["request_id"], "req-42");
    assert_eq!(post["upstream"], origin.addr.to_string());
    assert!(post["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(post["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(entries.iter().filter(|e| e["status"] == 404).count(), 2);
    let seen = origin.seen();
    assert_eq!(
        seen.last().unwrap().header("x-request-id").as_deref(),
        Some("req-42")
    );
    assert_eq!(
        seen[0].header("x-request-id").unwrap().len(),
        32,
        "generated id"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_health_endpoints() {
    let node = Node::start(
        "listeners: [{ name: web, address: 127.0.0.1:0 }]\nroutes: [{ respond: { body: hi } }]\n",
    );
    let admin = node.addr("admin");
    let client = Client::h1();
    assert_eq!(client.get(admin, "a", "/healthz").await.text(), "ok\n");
    assert_eq!(client.get(admin, "a", "/readyz").await.status, 200);
    assert_eq!(client.get(admin, "a", "/nope").await.status, 404);
    assert!(admin.ip().is_loopback());
    // No `admin.token` configured: the mutating endpoints are refused, whatever is sent.
    for path in ["/reload", "/cache/purge?all=true"] {
        for token in [None, Some(""), Some("anything")] {
            let (status, body) = admin_post(admin, path, token).await;
            assert_eq!(status, 403, "{path} with {token:?}: {body}");
            assert!(body.contains("admin.token"), "{body}");
        }
    }
}

async fn admin_post(admin: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut b = http::Request::post(format!("http://{admin}{path}"));
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let req = b
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let r = Client::h1().send(req).await.unwrap();
    (r.status, r.text())
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_over_the_admin_api_needs_the_token_and_reports_the_outcome() {
    let yaml = |body: &str| {
        format!(
            "listeners: [{{ name: web, address: \"ADDR\" }}]\nadmin: {{ address: \"ADMIN\", token: s3cret }}\nroutes: [{{ respond: {{ body: {body} }} }}]\n"
        )
    };
    let first = yaml("one")
        .replace("ADDR", "127.0.0.1:0")
        .replace("ADMIN", "127.0.0.1:0");
    let node = Node::start(&first);
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    let write = |text: String| {
        let text = text
            .replace("ADDR", &web.to_string())
            .replace("ADMIN", &admin.to_string());
        std::fs::write(
            &node.config,
            support::node::with_defaults(&text, node.dir.path()),
        )
        .unwrap();
    };
    write(yaml("two"));
    assert_eq!(admin_post(admin, "/reload", None).await.0, 401);
    assert_eq!(admin_post(admin, "/reload", Some("wrong")).await.0, 401);
    assert_eq!(
        Client::h1().get(web, "a", "/").await.text(),
        "one",
        "not reloaded without the token"
    );
    assert_eq!(
        admin_post(admin, "/reload", Some("s3cret")).await,
        (200, "{\"reloaded\":true}\n".to_string())
    );
    assert_eq!(Client::h1().get(web, "a", "/").await.text(), "two");
    // A bad config is refused with its location; the running one keeps serving.
    write(yaml("three").replace("routes:", "routes: [") + "]");
    let (status, body) = admin_post(admin, "/reload", Some("s3cret")).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("edge.yaml:"), "{body}");
    assert_eq!(Client::h1().get(web, "a", "/").await.text(), "two");
}

/// `access_log: { format: combined, path }`: nginx's combined format, one line per request,
/// appended to the file, with the client's fields escaped so that none can forge a field.
#[tokio::test(flavor = "multi_thread")]
async fn the_combined_access_log_goes_to_its_file() {
    let node = Node::start(
        "listeners: [{ name: web, address: 127.0.0.1:0 }]\n\
         access_log: { format: combined, path: \"{DIR}/access.log\" }\n\
         routes: [{ respond: { status: 201, body: hello } }]\n",
    );
    let web = node.addr("web");
    let req = http::Request::get(format!("http://{web}/a%20b?q=1"))
        .header("user-agent", "agent \"x\"")
        .header("referer", "http://r.example/")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(Client::h1().send(req).await.unwrap().status, 201);
    let path = node.dir.path().join("access.log");
    let read = path.clone();
    eventually(10, "the line in the file", move || {
        let text = std::fs::read_to_string(&read).unwrap_or_default();
        async move { text.lines().count() == 1 }
    })
    .await;
    let line = std::fs::read_to_string(&path).unwrap();
    let line = line.trim_end();
    let (start, rest) = line.split_once(" [").expect("a time in brackets");
    assert_eq!(start, "127.0.0.1 - -");
    let (time, rest) = rest.split_once("] ").unwrap();
    assert!(time.ends_with(" +0000") && time.len() == 26, "{time}");
    assert_eq!(
        rest,
        r#""GET /a%20b?q=1 HTTP/1.1" 201 5 "http://r.example/" "agent \x22x\x22""#
    );
    assert!(node.stdout_lines().is_empty(), "nothing on stdout");
}
