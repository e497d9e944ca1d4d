//! The short soak (the long one is bench/soak.sh): steady mixed load over HTTP/1.1 and h2c
//! on origin, cache and Wasm routes while the config is reloaded over and over and an origin
//! flaps. Zero failed requests; open file descriptors back to their baseline afterwards.
//! Steps are paced by the load's progress, not by sleeps.

use breakwater_tests as support;

use breakwater_tests::wasm;

use support::load::Load;
use support::{eventually, rss_kib, Client, Node, Origin};

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_load_through_reloads_and_a_flapping_origin_fails_nothing() {
    let a = Origin::echo().await;
    let mut b = Origin::echo().await;
    let b_addr = b.addr;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.wasm"), wasm::guest_handler("hello")).unwrap();
    let yaml = |version: u32| {
        format!(
            r#"
listeners: [{{ name: web, address: 127.0.0.1:0, h2c: true }}]
admin: {{ address: 127.0.0.1:0 }}
pools:
  p:
    endpoints: ["{a}", "{b}"]
    retries: 1
    health_check: {{ path: /healthz, interval: 200ms }}
components: {{ hello: {{ path: hello.wasm, kind: handler }} }}
routes:
  - {{ match: {{ path_prefix: /cache/ }}, pool: p, cache: {{ default_ttl: 60s }} }}
  - {{ match: {{ path: /hello }}, handler: hello }}
  - {{ pool: p, response_headers: {{ set: {{ x-version: "{version}" }} }} }}
"#,
            a = a.addr,
            b = b_addr
        )
    };
    let node = Node::start_in(dir, &yaml(0), &[]);
    let web = node.addr("web");
    let pid = node.pid();
    // Warm up, then take the baseline.
    for path in ["/load", "/cache/x", "/hello"] {
        assert_eq!(Client::h1().get(web, "a", path).await.status, 200, "{path}");
    }
    let fds_before = open_fds(pid);
    let rss_before = rss_kib(pid);

    let loads = [
        Load::start_with(web, 3, "/load", Client::h1),
        Load::start_with(web, 2, "/cache/x", Client::h2c),
        Load::start_with(web, 2, "/hello", Client::h1),
    ];
    let mut rss_mid = 0;
    for step in 1..=8 {
        for load in &loads {
            load.wait_for(40).await;
        }
        if step == 4 {
            rss_mid = rss_kib(pid);
        }
        let line = node.reload(&yaml(step));
        assert!(line.contains("config reloaded"), "{line}");
        if step == 3 {
            b.stop();
        }
        if step == 6 {
            b = Origin::start_on(b_addr, support::origin::echo_handler()).await;
        }
    }
    // Under the same load, the origin that came back gets traffic again.
    let b_seen = std::sync::Arc::new(b);
    let seen = b_seen.clone();
    eventually(15, "the flapping origin serves again", move || {
        let seen = seen.clone();
        async move { seen.hits() > 0 }
    })
    .await;
    let mut total = 0;
    for load in loads {
        // No failure, and no retry: reloads and a flapping origin close no client connection.
        total += load.finish_without_failures().await;
    }

    // Every client connection of the load is closed, and descriptors return to the baseline
    // give or take the idle keep-alive connections to the two origins (pingora pools up to
    // one per concurrent request: 7 clients here).
    let admin = node.addr("admin");
    eventually(15, "client connections closed", || async move {
        let m = Client::h1()
            .get(admin, "localhost", "/metrics")
            .await
            .text();
        m.lines()
            .filter(|l| l.starts_with("breakwater_client_connections{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
            == 0.0
    })
    .await;
    eventually(15, "file descriptors back to baseline", || async move {
        open_fds(pid) <= fds_before + 2 * 7 + 4
    })
    .await;
    let rss_after = rss_kib(pid);
    // Memory reaches a steady state: the second half of the run (four reloads, half the
    // requests) adds at most 8 MiB (a leak of 400 bytes per request, or of 2 MiB per reload,
    // would pass it; three runs here added -1.2, 1.1 and -0.6 MiB), and the whole run 48 MiB.
    assert!(
        rss_after <= rss_mid + 8 * 1024 && rss_after <= rss_before + 48 * 1024,
        "RSS {rss_before} -> {rss_mid} -> {rss_after} KiB"
    );
    eprintln!(
        "{total} requests, 0 failed; fds {fds_before} -> {}; RSS {rss_before} -> {rss_mid} -> {rss_after} KiB",
        open_fds(pid)
    );
}
