//! Scale to zero, end to end: components hold no instance until their first request (a cold
//! start, counted), drop what they hold when idle past `wasm.idle_unload`, many components
//! start and each serves, and a reload loads only the components that changed.

use breakwater_tests as support;

use breakwater_tests::wasm::{handler_component, handler_module};
use support::{metric, scrape as metrics};
use support::{Client, Node};

/// A handler answering `status`, with `id` in its code so that every copy has other bytes
/// (nothing shared by accident: each is compiled and loaded on its own).
fn numbered_handler(id: usize, status: u16) -> Vec<u8> {
    handler_component(&handler_module(&format!(
        "(drop (i32.const {id}))
         (call $drop_request (local.get $request))
         (call $respond (local.get $out) (i32.const {status}))"
    )))
}

/// A handler left to the runtime holds no instance until its first request, which is its one
/// cold start while it keeps being used; one with an explicit `prewarm` holds its instances
/// from load. With `idle_unload` short, a later request after a pause is cold again.
#[tokio::test(flavor = "multi_thread")]
async fn components_start_cold_on_first_use_and_again_after_idle() {
    let dir = tempfile::tempdir().unwrap();
    for (name, id) in [("lazy", 1), ("pinned", 2)] {
        std::fs::write(
            dir.path().join(format!("{name}.wasm")),
            numbered_handler(id, 200),
        )
        .unwrap();
    }
    let node = Node::start_in(
        dir,
        r#"
listeners: [{ name: web, address: 127.0.0.1:0 }]
admin: { address: 127.0.0.1:0 }
wasm: { idle_unload: off }
components:
  lazy: { path: lazy.wasm, kind: handler }
  pinned: { path: pinned.wasm, kind: handler, prewarm: 2 }
routes:
  - { match: { path: /lazy }, handler: lazy }
  - { match: { path: /pinned }, handler: pinned }
"#,
        &[],
    );
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    let m = metrics(admin).await;
    let ready = |m: &str, c: &str| {
        metric(
            m,
            "breakwater_component_instances_ready",
            &format!("component=\"{c}\""),
        )
    };
    let cold = |m: &str, c: &str| {
        metric(
            m,
            "breakwater_component_cold_starts_total",
            &format!("component=\"{c}\""),
        )
    };
    assert_eq!((ready(&m, "lazy"), ready(&m, "pinned")), (0.0, 2.0), "{m}");
    assert_eq!(cold(&m, "lazy"), 0.0);
    for _ in 0..5 {
        assert_eq!(Client::h1().get(web, "a", "/lazy").await.status, 200);
        assert_eq!(Client::h1().get(web, "a", "/pinned").await.status, 200);
    }
    let m = metrics(admin).await;
    assert_eq!(cold(&m, "lazy"), 1.0, "one cold start, then warm");
    assert_eq!(cold(&m, "pinned"), 0.0, "an explicit prewarm is never cold");
    assert!(
        m.contains("breakwater_component_cold_start_seconds_count{component=\"lazy\"} 1"),
        "{m}"
    );

    // With idle_unload at 1 ms (a process setting: a node of its own), a request after any
    // pause of its component is cold again.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("brief.wasm"), numbered_handler(3, 200)).unwrap();
    let brief = Node::start_in(
        dir,
        r#"
listeners: [{ name: web, address: 127.0.0.1:0 }]
admin: { address: 127.0.0.1:0 }
wasm: { idle_unload: 1ms }
components:
  brief: { path: brief.wasm, kind: handler }
routes:
  - { handler: brief }
"#,
        &[],
    );
    let (web, admin) = (brief.addr("web"), brief.addr("admin"));
    support::eventually(
        10,
        "a second cold start of a component idle for 1 ms",
        || async {
            assert_eq!(Client::h1().get(web, "a", "/").await.status, 200);
            cold(&metrics(admin).await, "brief") >= 2.0
        },
    )
    .await;
}

/// A handler or filter that an earlier load proved (its compiled code in `wasm.cache_dir`, with
/// the same memory limit) is loaded on its first request: a node restarting with a warm cache
/// maps no compiled code and pre-links nothing at start, and the first request is its cold
/// start.
#[tokio::test(flavor = "multi_thread")]
async fn a_component_proved_before_is_loaded_on_its_first_request() {
    let shared = tempfile::tempdir().unwrap();
    let wasm = shared.path().join("h.wasm");
    std::fs::write(&wasm, numbered_handler(11, 203)).unwrap();
    let pinned = shared.path().join("pinned.wasm");
    std::fs::write(&pinned, numbered_handler(12, 204)).unwrap();
    let filter = shared.path().join("f.wasm");
    std::fs::write(&filter, breakwater_tests::wasm::counter()).unwrap();
    let yaml = format!(
        r#"
listeners: [{{ name: web, address: 127.0.0.1:0 }}]
admin: {{ address: 127.0.0.1:0 }}
wasm: {{ cache_dir: "{cache}" }}
components:
  h: {{ path: "{wasm}", kind: handler }}
  pinned: {{ path: "{pinned}", kind: handler, prewarm: 2 }}
  f: {{ path: "{filter}" }}
routes:
  - {{ match: {{ path: /pinned }}, handler: pinned }}
  - {{ match: {{ path: /filtered }}, respond: {{ body: hi }}, filters: [f] }}
  - {{ handler: h }}
"#,
        cache = shared.path().join("cache").display(),
        wasm = wasm.display(),
        pinned = pinned.display(),
        filter = filter.display()
    );
    let hits = |m: &str| metric(m, "breakwater_wasm_cache_hits_total", "");
    let compiles = |m: &str| metric(m, "breakwater_wasm_compiles_total", "");
    let cold = |m: &str| metric(m, "breakwater_component_cold_starts_total", "");
    {
        let first = Node::start_in(tempfile::tempdir().unwrap(), &yaml, &[]);
        let m = metrics(first.addr("admin")).await;
        assert_eq!((compiles(&m), hits(&m)), (3.0, 0.0), "loaded at start: {m}");
        let r = Client::h1().get(first.addr("web"), "a", "/").await;
        assert_eq!(r.status, 203);
    }
    let again = Node::start_in(tempfile::tempdir().unwrap(), &yaml, &[]);
    let (web, admin) = (again.addr("web"), again.addr("admin"));
    let m = metrics(admin).await;
    assert_eq!(
        (compiles(&m), hits(&m), cold(&m)),
        (0.0, 1.0, 0.0),
        "only the handler with an explicit prewarm is loaded at start: {m}"
    );
    assert_eq!(
        metric(
            &m,
            "breakwater_component_instances_ready",
            "component=\"pinned\""
        ),
        2.0,
        "{m}"
    );
    // Concurrent first requests share one load.
    let tasks: Vec<_> = (0..8)
        .map(|_| tokio::spawn(async move { Client::h1().get(web, "a", "/").await.status }))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 203);
    }
    let m = metrics(admin).await;
    assert_eq!(
        (compiles(&m), hits(&m), cold(&m)),
        (0.0, 2.0, 1.0),
        "one load, from the cache, on the first request: {m}"
    );
    // The filter too: its phases came from the proof, its code on its first request.
    for _ in 0..2 {
        let r = Client::h1().get(web, "a", "/filtered").await;
        assert_eq!(r.status, 200);
    }
    let m = metrics(admin).await;
    assert_eq!(
        (compiles(&m), hits(&m), cold(&m)),
        (0.0, 3.0, 2.0),
        "the filter loaded once, from the cache, on its first request: {m}"
    );
}

/// Two thousand components start in one node (none holds an instance slot until used: the
/// default `wasm.max_instances` of 1000 is no limit on how many are loaded), and each
/// answers; a reload that changes one of them loads that one only. (bench/scale-to-zero.sh
/// loads 10 000 with different bytes each.)
#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_components_load_and_a_reload_loads_only_the_changed_one() {
    const N: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mut yaml = format!(
        "listeners: [{{ name: web, address: 127.0.0.1:0 }}]\nadmin: {{ address: 127.0.0.1:0 }}\nwasm: {{ cache_dir: \"{}\" }}\ncomponents:\n",
        cache.display()
    );
    for i in 0..N {
        // Seven different codes: each file is loaded on its own (its own compiled code in
        // memory), compiling only seven keeps the test light beside the others.
        std::fs::write(
            dir.path().join(format!("h{i}.wasm")),
            numbered_handler(i % 7, 200 + (i % 7) as u16),
        )
        .unwrap();
        yaml.push_str(&format!("  h{i}: {{ path: h{i}.wasm, kind: handler }}\n"));
    }
    yaml.push_str("routes:\n");
    for i in 0..N {
        yaml.push_str(&format!(
            "  - {{ match: {{ hosts: [h{i}.example] }}, handler: h{i} }}\n"
        ));
    }
    let node = Node::start_in(dir, &yaml, &[]);
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    let client = Client::h1();
    for i in 0..N {
        let host = format!("h{i}.example");
        let r = client.get(web, &host, "/").await;
        assert_eq!(r.status, 200 + (i % 7) as u16, "{host}");
    }
    let m = metrics(admin).await;
    assert_eq!(
        metric(&m, "breakwater_components_loaded_total", ""),
        N as f64
    );
    let compiles = |m: &str| metric(m, "breakwater_wasm_compiles_total", "");
    assert_eq!(
        compiles(&m),
        7.0,
        "seven codes compiled, the other copies from the cache"
    );
    assert_eq!(
        metric(&m, "breakwater_component_cold_starts_total", ""),
        N as f64,
        "each component's first request was its cold start"
    );

    // Change one component's file: only it is loaded again.
    std::fs::write(node.dir.path().join("h7.wasm"), numbered_handler(7, 299)).unwrap();
    let yaml = std::fs::read_to_string(&node.config).unwrap();
    let line = node.reload(&yaml);
    assert!(line.contains("config reloaded"), "{line}");
    assert_eq!(client.get(web, "h7.example", "/").await.status, 299);
    assert_eq!(client.get(web, "h8.example", "/").await.status, 201);
    let m = metrics(admin).await;
    assert_eq!(
        metric(&m, "breakwater_components_loaded_total", ""),
        N as f64 + 1.0
    );
    assert_eq!(compiles(&m), 8.0, "only the changed component was compiled");
}

/// Slots are shared by all components: a tenant at its share (`max_concurrency`) gets 503 at
/// once and the others are served; when the pool's slots (`wasm.max_instances`) run out, a
/// request that needs one gets 503 at once, counted, never a wait.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_at_its_share_or_out_of_slots_gets_503_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hog.wasm"),
        handler_component(&handler_module("(loop $l (br $l))")),
    )
    .unwrap();
    std::fs::write(dir.path().join("ok.wasm"), numbered_handler(1, 200)).unwrap();
    let node = Node::start_in(
        dir,
        r#"
listeners: [{ name: web, address: 127.0.0.1:0 }]
admin: { address: 127.0.0.1:0 }
wasm: { max_instances: 3 }
components:
  hog: { path: hog.wasm, kind: handler, max_concurrency: 2, deadline: 60s }
  greedy: { path: hog.wasm, kind: handler, deadline: 60s }
  ok: { path: ok.wasm, kind: handler }
routes:
  - { match: { path: /hog }, handler: hog }
  - { match: { path: /greedy }, handler: greedy }
  - { handler: ok }
"#,
        &[],
    );
    let (web, admin) = (node.addr("web"), node.addr("admin"));
    let in_use = |c: &'static str| async move {
        metric(
            &metrics(admin).await,
            "breakwater_component_instances_in_use",
            &format!("component=\"{c}\""),
        )
    };
    let hold = |path: &'static str| {
        tokio::spawn(async move { Client::h1().get(web, "a", path).await.status })
    };
    let mut held = vec![hold("/hog"), hold("/hog")];
    // 30 s, not 10: with the whole suite on two cores, spinning guests included, a request can
    // take seconds to reach its guest (a full run on a busy machine once failed this test, at
    // one of its 10 s waits).
    support::eventually(30, "two hog requests in their guests", || async {
        in_use("hog").await == 2.0
    })
    .await;
    assert_eq!(
        Client::h1().get(web, "a", "/hog").await.status,
        503,
        "past its share"
    );
    assert_eq!(
        Client::h1().get(web, "a", "/").await.status,
        200,
        "others are served"
    );

    // A tenant without a share takes the last slot; then nobody gets one, at once.
    held.push(hold("/greedy"));
    support::eventually(30, "the greedy request in its guest", || async {
        in_use("greedy").await == 1.0
    })
    .await;
    assert_eq!(Client::h1().get(web, "a", "/greedy").await.status, 503);
    assert_eq!(Client::h1().get(web, "a", "/").await.status, 503);
    let m = metrics(admin).await;
    assert!(
        metric(
            &m,
            "breakwater_component_errors_total",
            "kind=\"instantiate\""
        ) >= 2.0,
        "{m}"
    );
    assert_eq!(
        in_use("hog").await + in_use("greedy").await,
        3.0,
        "the held requests still run"
    );
    for h in &held {
        assert!(!h.is_finished());
    }
    for h in held {
        h.abort();
    }
}
