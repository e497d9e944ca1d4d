//! A fleet of three nodes on loopback sharing one real Redis: a purge sent to one node's admin
//! API reaches the others through the Redis stream, and a Redis outage costs no request: the
//! purge applies where it was sent and reaches the others once Redis is back.

use breakwater_tests as support;

use bytes::Bytes;
use http_body_util::Full;
use std::net::SocketAddr;
use support::origin::{Action, Seen};
use support::redis::Redis;
use support::{eventually, scrape as metrics, Client, Node, Origin, Reply};

/// The sum of every sample of metric `name`.
fn metric(text: &str, name: &str) -> f64 {
    support::metric(text, name, "")
}

/// A node of the fleet on `redis` with `fleet` settings besides the address, caching what
/// `origin` answers; purges need the token `t0ken`.
fn fleet_yaml(redis: &Redis, fleet: &str, origin: SocketAddr) -> String {
    format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
admin: {{ address: 127.0.0.1:0, token: t0ken }}
fleet: {{ redis: "{redis}", {fleet} }}
pools: {{ o: {{ endpoints: ["{origin}"], retries: 0 }} }}
routes: [{{ pool: o, cache: {{}} }}]
"#,
        redis = redis.url()
    )
}

async fn get(node: &Node, path: &str) -> Reply {
    Client::h1()
        .get(node.addr("web"), "example.com", path)
        .await
}

fn hit(r: &Reply) -> bool {
    r.header("cache-status")
        .is_some_and(|s| s.starts_with("breakwater; hit"))
}

async fn purge(node: &Node, query: &str) -> Reply {
    let admin = node.addr("admin");
    let req = http::Request::post(format!("http://{admin}/cache/purge?{query}"))
        .header("host", "localhost")
        .header("authorization", "Bearer t0ken")
        .body(Full::new(Bytes::new()))
        .unwrap();
    Client::h1().send(req).await.unwrap()
}

/// Cache `path` on every node: a miss, then a hit.
async fn cache_everywhere(nodes: &[Node], path: &str) {
    for node in nodes {
        get(node, path).await;
        assert!(hit(&get(node, path).await), "{path} cached");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_on_one_node_reaches_every_node_and_outlasts_a_redis_outage() {
    let mut redis = Redis::start();
    let origin = Origin::start(cacheable_origin()).await;
    let yaml = fleet_yaml(&redis, "timeout: 200ms", origin.addr);
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&yaml)).collect();
    cache_everywhere(&nodes, "/a").await;

    // The answer comes once Redis has stored the purge for the others.
    let r = purge(&nodes[0], "url=example.com/a").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "{\"purged\":1,\"fleet\":true}\n")
    );
    assert!(
        !hit(&get(&nodes[0], "/a").await),
        "purged where it was sent"
    );
    for node in &nodes[1..] {
        // Each request to a node that has not heard yet is a hit and changes nothing.
        eventually(10, "the purge reaches the other node", || async {
            !hit(&get(node, "/a").await)
        })
        .await;
        let m = metrics(node.addr("admin")).await;
        assert_eq!(
            metric(&m, "breakwater_fleet_purges_received_total"),
            1.0,
            "{m}"
        );
    }

    // Redis goes away: serving goes on, a purge applies where it was sent and waits.
    cache_everywhere(&nodes, "/b").await;
    redis.stop();
    let r = purge(&nodes[0], "prefix=example.com/b").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "{\"purged\":1,\"fleet\":false}\n"),
        "purged here, not stored for the others"
    );
    assert!(!hit(&get(&nodes[0], "/b").await));
    let admin = nodes[0].addr("admin");
    let m = metrics(admin).await;
    assert_eq!(metric(&m, "breakwater_fleet_purges_pending"), 1.0, "{m}");
    for node in &nodes {
        let ready = Client::h1()
            .get(node.addr("admin"), "localhost", "/readyz")
            .await;
        assert_eq!(ready.status, 200, "Redis is not on the serving path");
    }
    assert!(
        hit(&get(&nodes[1], "/b").await),
        "no other node heard of it"
    );

    // Redis is back (empty): the waiting purge is published and the others apply it.
    assert!(redis.restart());
    for node in &nodes[1..] {
        eventually(20, "the waiting purge reaches the other node", || async {
            !hit(&get(node, "/b").await)
        })
        .await;
    }
    let m = metrics(admin).await;
    assert_eq!(metric(&m, "breakwater_fleet_purges_pending"), 0.0, "{m}");
    assert_eq!(
        metric(&m, "breakwater_fleet_purges_published_total"),
        2.0,
        "{m}"
    );
    assert_eq!(metric(&m, "breakwater_fleet_redis_up"), 1.0, "{m}");
}

/// A node restarted while purges go round replays, once up, those sent while it was down (it
/// reads the stream from shortly before its start): the restarted node counts the purge sent
/// in between.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_node_replays_the_purges_sent_while_it_was_down() {
    let redis = Redis::start();
    let origin = Origin::start(cacheable_origin()).await;
    let yaml = fleet_yaml(&redis, "timeout: 1s", origin.addr);
    let a = Node::start(&yaml);
    let b = Node::start(&yaml);
    drop(b);
    let r = purge(&a, "key=k1").await;
    assert_eq!(r.text(), "{\"purged\":0,\"fleet\":true}\n");
    let b = Node::start(&yaml);
    let admin = b.addr("admin");
    eventually(10, "the restarted node replays the purge", || async {
        metric(
            &metrics(admin).await,
            "breakwater_fleet_purges_received_total",
        ) == 1.0
    })
    .await;
}

/// A node that missed purges it cannot replay (the stream's history, 2 entries here, was
/// trimmed past the last entry it read while it was cut off) purges its whole cache rather
/// than serve what may have been purged.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_cannot_tell_what_it_missed_purges_everything() {
    // One entry per stream node, so that `MAXLEN ~ 2` trims to about 2 entries.
    let redis = Redis::start_with_args(&["--stream-node-max-entries", "1"]);
    let origin = Origin::start(cacheable_origin()).await;
    let yaml = fleet_yaml(&redis, "timeout: 2s, purge_history: 2", origin.addr);
    let nodes: Vec<Node> = (0..2).map(|_| Node::start(&yaml)).collect();
    cache_everywhere(&nodes, "/kept").await;
    // Both nodes read from the stream once, so each has a position in it.
    assert_eq!(purge(&nodes[0], "key=first").await.status, 200);
    let admin = nodes[1].addr("admin");
    eventually(10, "the first purge reaches the other node", || async {
        metric(
            &metrics(admin).await,
            "breakwater_fleet_purges_received_total",
        ) == 1.0
    })
    .await;
    // Cut every client off; the readers come back after `timeout` (2 s), by which time six
    // more purges have been stored and the history trimmed past what node 1 read (node 0's
    // reader is in the same place: it cannot tell either whether others published).
    redis.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
    for i in 0..6 {
        let r = purge(&nodes[0], &format!("key=k{i}")).await;
        assert!(r.text().ends_with("\"fleet\":true}\n"), "{}", r.text());
    }
    eventually(15, "node 1 purges everything", || async {
        metric(&metrics(admin).await, "breakwater_fleet_full_purges_total") == 1.0
    })
    .await;
    assert!(!hit(&get(&nodes[1], "/kept").await), "purged with the rest");
}

/// A Redis that requires a password: the nodes authenticate with the one in
/// `fleet.password_file`, and a purge goes round as without one; the password appears in
/// no log line.
#[tokio::test(flavor = "multi_thread")]
async fn a_password_from_a_file_authenticates_and_stays_out_of_the_logs() {
    let secret = "s3cret-Pa55";
    let redis = Redis::start_with_password(secret);
    let origin = Origin::start(cacheable_origin()).await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("redis-password");
    std::fs::write(&password_file, format!("{secret}\n")).unwrap();
    let fleet = format!(
        "password_file: \"{}\", timeout: 200ms",
        password_file.display()
    );
    let yaml = fleet_yaml(&redis, &fleet, origin.addr);
    let nodes: Vec<Node> = (0..2).map(|_| Node::start(&yaml)).collect();
    cache_everywhere(&nodes, "/p").await;
    assert_eq!(purge(&nodes[0], "url=example.com/p").await.status, 200);
    eventually(10, "the purge reaches the other node", || async {
        !hit(&get(&nodes[1], "/p").await)
    })
    .await;
    for node in &nodes {
        assert!(!node.stderr().contains(secret), "{}", node.stderr());
    }
}

/// A Redis that speaks TLS only (`rediss://`), its certificate signed by a private CA: nodes
/// that trust that CA (`fleet.ca_file`) pass a purge round as over plain TCP; a node that
/// trusts only the system's store refuses the server's certificate, so its purge applies
/// locally and says it did not reach the fleet.
#[tokio::test(flavor = "multi_thread")]
async fn purges_go_round_over_tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start_tls(&support::certs::Ca::new(), dir.path());
    let origin = Origin::start(cacheable_origin()).await;
    let ca = dir.path().join("ca.pem");
    let yaml = fleet_yaml(
        &redis,
        &format!("ca_file: \"{}\", timeout: 500ms", ca.display()),
        origin.addr,
    );
    let nodes: Vec<Node> = (0..2).map(|_| Node::start(&yaml)).collect();
    cache_everywhere(&nodes, "/p").await;
    let r = purge(&nodes[0], "url=example.com/p").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "{\"purged\":1,\"fleet\":true}\n")
    );
    eventually(10, "the purge reaches the other node", || async {
        !hit(&get(&nodes[1], "/p").await)
    })
    .await;

    let untrusting = Node::start(&fleet_yaml(&redis, "timeout: 500ms", origin.addr));
    cache_everywhere(std::slice::from_ref(&untrusting), "/q").await;
    let r = purge(&untrusting, "url=example.com/q").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "{\"purged\":1,\"fleet\":false}\n")
    );
}

/// A Spin component (Spin Python SDK) with `key_value: redis` on two nodes sees one store:
/// what one node's instance writes, the other's reads, and its keys are listed. With Redis gone, a key-value call
/// fails that request at once as the component's error (500, fail-closed), and the node
/// goes on serving the component's other paths.
#[tokio::test(flavor = "multi_thread")]
async fn a_spin_key_value_store_is_one_store_across_the_fleet() {
    let mut redis = Redis::start();
    let spin = support::wasm::guest("spin-hello.wasm");
    let yaml = format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
admin: {{ address: 127.0.0.1:0 }}
fleet: {{ redis: "{redis}", timeout: 500ms }}
wasm: {{ cache_dir: "{cache}" }}
components:
  spin: {{ path: "{spin}", kind: handler, warmup: off, key_value: redis, deadline: 20s }}
routes:
  - {{ handler: spin }}
"#,
        redis = redis.url(),
        cache = spin.parent().unwrap().join("cache").display(),
        spin = spin.display(),
    );
    let (a, b) = (Node::start(&yaml), Node::start(&yaml));
    let put = http::Request::put(format!("http://{}/kv/shared", a.addr("web")))
        .header("host", "a")
        .body(Full::new(Bytes::from_static(b"written on a")))
        .unwrap();
    assert_eq!(Client::h1().send(put).await.unwrap().status, 201);
    let r = Client::h1().get(b.addr("web"), "b", "/kv/shared").await;
    assert_eq!((r.status, r.text().as_str()), (200, "written on a"));
    let r = Client::h1().get(b.addr("web"), "b", "/kv/absent").await;
    assert_eq!(r.status, 404);
    // `get-keys` lists this component's keys, not those of a component named alike.
    redis.cli(&["SET", "breakwater:kv:spin2:other", "x"]);
    redis.cli(&["SET", "breakwater:kv:spin:b", "written by hand"]);
    let r = Client::h1().get(b.addr("web"), "b", "/kv-keys").await;
    assert_eq!((r.status, r.text().as_str()), (200, "b,shared\n"));

    redis.stop();
    let r = Client::h1().get(a.addr("web"), "a", "/kv/shared").await;
    assert_eq!(r.status, 500, "the store's error, not the deadline's 504");
    let r = Client::h1().get(a.addr("web"), "a", "/hello").await;
    assert_eq!(r.status, 200);
}

/// An origin whose every answer may be cached for 600 s (it says which URL it is for).
fn cacheable_origin() -> support::origin::Handler {
    std::sync::Arc::new(|s: &Seen| Action::Respond {
        status: 200,
        headers: vec![("cache-control".into(), "max-age=600".into())],
        body: Bytes::from(format!("origin {}", s.uri)),
    })
}

fn edge_yaml(origin: SocketAddr, parent: SocketAddr) -> String {
    format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
admin: {{ address: 127.0.0.1:0 }}
pools:
  origin: {{ endpoints: ["{origin}"], retries: 0 }}
  parents: {{ endpoints: ["{parent}"], retries: 0 }}
routes:
  - {{ pool: origin, cache: {{}}, shield: parents }}
"#
    )
}

/// Two edge nodes shield through one parent: the second edge's miss is the parent's hit, so
/// the origin sees one request per object, carrying both forwarders in `CDN-Loop`. With the
/// parent gone, misses go to the origin.
#[tokio::test(flavor = "multi_thread")]
async fn a_shield_tier_fetches_each_object_from_the_origin_once() {
    let origin = Origin::start(cacheable_origin()).await;
    let parent = Node::start(&format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
admin: {{ address: 127.0.0.1:0 }}
pools:
  origin: {{ endpoints: ["{origin}"], retries: 0 }}
routes:
  - {{ pool: origin, cache: {{}} }}
"#,
        origin = origin.addr
    ));
    let edges = [
        Node::start(&edge_yaml(origin.addr, parent.addr("web"))),
        Node::start(&edge_yaml(origin.addr, parent.addr("web"))),
    ];
    for (i, edge) in edges.iter().enumerate() {
        let r = get(edge, "/object").await;
        assert_eq!((r.status, r.text().as_str()), (200, "origin /object"));
        // RFC 9211: the edge's entry, then the parent's (a miss for the first edge, a hit
        // for the second).
        let status = r.header("cache-status").unwrap();
        let parent = if i == 0 {
            "breakwater; fwd=miss"
        } else {
            "breakwater; hit"
        };
        assert!(
            status.starts_with("breakwater; fwd=miss") && status.contains(&format!(", {parent}")),
            "{status}"
        );
    }
    assert_eq!(origin.hits(), 1, "one fetch from the origin for both edges");
    let seen = &origin.seen()[0];
    let loop_entries: Vec<&str> = seen
        .headers
        .get_all("cdn-loop")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let loop_entries = loop_entries.join(", ");
    assert_eq!(
        loop_entries.matches("breakwater; node=").count(),
        2,
        "the edge and the parent: {loop_entries}"
    );
    // The parent gone: a miss falls back to the origin.
    drop(parent);
    let r = get(&edges[0], "/other").await;
    assert_eq!((r.status, r.text().as_str()), (200, "origin /other"));
    assert_eq!(origin.hits(), 2);
}

/// Two nodes misconfigured to shield through each other: the request that comes back to a
/// node it passed is refused with 508 (RFC 8586), and the origin is never reached.
#[tokio::test(flavor = "multi_thread")]
async fn a_shield_loop_between_two_nodes_ends_in_508() {
    let origin = Origin::start(cacheable_origin()).await;
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let x = Node::start(&edge_yaml(origin.addr, unused.local_addr().unwrap()));
    let y = Node::start(&edge_yaml(origin.addr, x.addr("web")));
    let line = x.reload(&edge_yaml(origin.addr, y.addr("web")));
    assert!(line.contains("config reloaded"), "{line}");
    let r = get(&x, "/looping").await;
    assert_eq!(r.status, 508);
    assert_eq!(origin.hits(), 0);
}

/// Spin's outbound Redis (`spin:redis/redis@3.0.0`) from a Spin Python SDK component: to an
/// address its `allowed_outbound_hosts` lists, commands reach the real Redis; to any other,
/// opening the connection fails that request (500), for the same component bytes.
#[tokio::test(flavor = "multi_thread")]
async fn spin_redis_reaches_only_the_allowed_addresses() {
    let redis = Redis::start();
    let spin = support::wasm::guest("spin-hello.wasm");
    let yaml = format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
wasm: {{ cache_dir: "{cache}" }}
components:
  allowed: {{ path: "{spin}", kind: handler, warmup: off, allowed_outbound_hosts: ["redis://{addr}"], config: {{ redis_address: "{url}" }} }}
  denied: {{ path: "{spin}", kind: handler, warmup: off, config: {{ redis_address: "{url}" }} }}
routes:
  - {{ match: {{ hosts: [denied] }}, handler: denied }}
  - {{ handler: allowed }}
"#,
        cache = spin.parent().unwrap().join("cache").display(),
        spin = spin.display(),
        addr = redis.addr,
        url = redis.url(),
    );
    let node = Node::start(&yaml);
    let web = node.addr("web");
    for hits in 1..=2 {
        let r = Client::h1().get(web, "a", "/redis/incr").await;
        assert_eq!((r.status, r.text()), (200, format!("{hits} hello a,b 1\n")));
    }
    assert_eq!(
        Client::h1().get(web, "denied", "/redis/incr").await.status,
        500
    );
    // Port 6379 is not listed either.
    assert_eq!(Client::h1().get(web, "a", "/redis").await.status, 500);
}

/// A Spin 2 component (Spin Python SDK 3: `fermyon:spin/key-value@2.0.0` and
/// `fermyon:spin/redis@2.0.0`) on two nodes: with `key_value: redis` what one node writes the
/// other reads and lists; its outbound Redis reaches an allowed address (every command of the
/// interface, `execute` among them) and is refused for one that is not listed.
#[tokio::test(flavor = "multi_thread")]
async fn a_spin_2_component_shares_its_store_and_reaches_only_allowed_redis() {
    let redis = Redis::start();
    let spin = support::wasm::guest("spin2-hello.wasm");
    let yaml = format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
fleet: {{ redis: "{url}", timeout: 500ms }}
wasm: {{ cache_dir: "{cache}" }}
components:
  spin: {{ path: "{spin}", kind: handler, warmup: off, key_value: redis, deadline: 20s, allowed_outbound_hosts: ["redis://{addr}"], config: {{ redis_address: "{url}" }} }}
routes:
  - {{ handler: spin }}
"#,
        cache = spin.parent().unwrap().join("cache").display(),
        spin = spin.display(),
        addr = redis.addr,
        url = redis.url(),
    );
    let (a, b) = (Node::start(&yaml), Node::start(&yaml));
    let put = http::Request::put(format!("http://{}/kv/shared", a.addr("web")))
        .header("host", "a")
        .body(Full::new(Bytes::from_static(b"written on a")))
        .unwrap();
    assert_eq!(Client::h1().send(put).await.unwrap().status, 201);
    let r = Client::h1().get(b.addr("web"), "b", "/kv/shared").await;
    assert_eq!((r.status, r.text().as_str()), (200, "written on a"));
    assert_eq!(
        redis.cli(&["GET", "breakwater:kv:spin:shared"]).trim(),
        "written on a"
    );
    let r = Client::h1().get(b.addr("web"), "b", "/kv-keys").await;
    assert_eq!((r.status, r.text().as_str()), (200, "shared\n"));

    // SET, INCR, GET, SADD, SREM, SMEMBERS, DEL, then `execute` with INCRBY, GET, SET and a
    // GET of a missing key (integer, binary, status and nil results).
    for (node, hits) in [(&a, 1), (&b, 12)] {
        let r = Client::h1().get(node.addr("web"), "a", "/redis/incr").await;
        assert_eq!(
            (r.status, r.text()),
            (
                200,
                format!(
                    "{hits} hello a,b 1 1 int64:{},binary:hello,status:OK,nil\n",
                    hits + 10
                )
            )
        );
    }
    assert_eq!(redis.cli(&["GET", "hits2"]).trim(), "22");
    // redis://127.0.0.1:6379 is not in allowed_outbound_hosts: `open` returns the error.
    let r = Client::h1().get(a.addr("web"), "a", "/redis").await;
    assert_eq!((r.status, r.text().as_str()), (403, "Error_Other\n"));
}
