//! The filter chain alone: real components (core modules in WAT made into components), no
//! pingora session, no network.

use super::*;
use crate::ops::metrics::Metrics;
use crate::pipeline::Scheme;
use breakwater_isolate::{FilterSettings, Runtime, RuntimeSettings};
use breakwater_tests::wasm;

/// The pool names the test filters switch to.
const POOL_NAMES: &str = r#"(data (i32.const 3000) "nope") (data (i32.const 3010) "ok")"#;

/// A request filter whose `on-request` runs `body`.
fn on_request(body: &str) -> String {
    wasm::module(&format!("{POOL_NAMES} {}", wasm::on_request(body)))
}

/// `continue` with nothing changed but the pool, switched to the `len` bytes at `name` (a
/// `forward` record at offset 4 of the variant; its `pool` option at 52).
fn switch_pool(name: u32, len: u32) -> String {
    format!(
        "{continue_} (i32.store8 (i32.const 2100) (i32.const 1))
         (i32.store (i32.const 2104) (i32.const {name})) (i32.store (i32.const 2108) (i32.const {len}))
         (drop) (i32.const 2048)",
        continue_ = wasm::CONTINUE
    )
}

struct Fixture {
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
}

impl Fixture {
    fn new() -> Self {
        let settings = RuntimeSettings {
            max_instances: 20,
            ..RuntimeSettings::default()
        };
        Self {
            runtime: Runtime::new(settings).unwrap(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    fn filter(&self, name: &str, world: &str, wat: &str, policy: FailurePolicy) -> PlannedFilter {
        self.filter_bytes(name, wasm::component(world, wat), policy)
    }

    fn filter_bytes(&self, name: &str, bytes: Vec<u8>, policy: FailurePolicy) -> PlannedFilter {
        let path = std::path::PathBuf::from(format!("{name}.wasm"));
        let settings = FilterSettings::default();
        let filter = self
            .runtime
            .load_filter_bytes(name, &path, &bytes, settings)
            .unwrap();
        let name: Arc<str> = name.into();
        PlannedFilter {
            filter,
            metrics: Arc::new(ComponentMetrics::new(&self.metrics, &name)),
            name,
            policy,
            max_body_bytes: 1 << 20,
        }
    }

    fn plan(&self, filters: Vec<PlannedFilter>) -> FilterPlan {
        FilterPlan {
            route: "r".into(),
            filters,
            body_access: false,
            pools: Vec::new(),
        }
    }
}

fn request() -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/a", None).unwrap();
    req.insert_header("host", "example.com").unwrap();
    req
}

fn client() -> Client {
    Client {
        scheme: Scheme::Https,
        addr: None,
    }
}

#[test]
fn response_filters_edit_every_response() {
    let f = Fixture::new();
    let demo = crate::demo::demo_filter().unwrap();
    let closed = FailurePolicy::FailClosed;
    let plan = f.plan(vec![f.filter_bytes("demo", demo, closed)]);
    let mut chain = FilterChain::default();
    let mut req = request();
    let outcome = chain.on_request(&plan, &mut req, &client()).unwrap();
    assert!(
        outcome.is_none(),
        "a response filter lets the request go on"
    );
    let mut resp = ResponseHeader::build(200, None).unwrap();
    chain.on_response(&plan, &req, &mut resp).unwrap();
    assert_eq!(resp.headers["x-breakwater-filter"], "demo");
    let text = String::from_utf8(f.metrics.render()).unwrap();
    let calls = r#"breakwater_component_invocations_total{component="demo",phase="response"} 1"#;
    assert!(text.lines().any(|l| l == calls), "{text}");
}

#[test]
fn a_filter_may_answer_the_request_itself() {
    let f = Fixture::new();
    let wat = on_request(&wasm::respond("(i32.const 403)", 3000, "(i32.const 4)"));
    let plan = f.plan(vec![f.filter(
        "forbid",
        "request-filter",
        &wat,
        FailurePolicy::FailClosed,
    )]);
    let mut chain = FilterChain::default();
    let local = chain.on_request(&plan, &mut request(), &client()).unwrap();
    let local = local.expect("the filter answers");
    assert_eq!(local.status, 403);
    assert_eq!(&local.body[..], b"nope");
}

#[test]
fn a_failing_filter_follows_its_policy() {
    let f = Fixture::new();
    let trap = on_request("(unreachable)");
    for (policy, refused) in [
        (FailurePolicy::FailClosed, true),
        (FailurePolicy::FailOpen, false),
    ] {
        let demo = crate::demo::demo_filter().unwrap();
        let plan = f.plan(vec![
            f.filter_bytes("demo", demo, policy),
            f.filter("trap", "request-filter", &trap, policy),
        ]);
        let mut chain = FilterChain::default();
        let mut req = request();
        let result = chain.on_request(&plan, &mut req, &client());
        match result {
            Err(e) => {
                assert!(refused, "fail-open refused: {e}");
                assert!(
                    matches!(&e, EdgeError::Component(IsolateError::Trap { .. })),
                    "{e}"
                );
                assert_eq!(e.status(), 500);
            }
            Ok(local) => {
                assert!(!refused, "fail-closed let the request through");
                assert!(local.is_none());
            }
        }
        // The filters that ran before still see the response (here: the error response).
        let mut resp = ResponseHeader::build(500, None).unwrap();
        chain.on_response(&plan, &req, &mut resp).unwrap();
        assert_eq!(resp.headers["x-breakwater-filter"], "demo");
    }
}

#[test]
fn a_filter_switches_only_to_a_pool_its_route_allows() {
    let f = Fixture::new();
    let allowed = crate::pipeline::upstream::test_pool(
        "ok",
        breakwater_config::Balance::RoundRobin,
        &["127.0.0.1:9"],
    );
    let closed = FailurePolicy::FailClosed;
    let to_ok = on_request(&switch_pool(3010, 2));
    let mut plan = f.plan(vec![f.filter("to-ok", "request-filter", &to_ok, closed)]);
    plan.pools = vec![("ok".into(), allowed.clone())];
    let mut chain = FilterChain::default();
    assert!(chain
        .on_request(&plan, &mut request(), &client())
        .unwrap()
        .is_none());
    let chosen = chain.pool().expect("switched");
    assert!(Arc::ptr_eq(chosen, &allowed));

    let to_nope = on_request(&switch_pool(3000, 4));
    plan.filters = vec![f.filter("to-nope", "request-filter", &to_nope, closed)];
    let mut chain = FilterChain::default();
    let e = chain
        .on_request(&plan, &mut request(), &client())
        .unwrap_err();
    assert!(
        matches!(&e, EdgeError::PoolNotAllowed { pool, .. } if pool == "nope"),
        "{e}"
    );
    assert_eq!(e.status(), 500);
    assert!(chain.pool().is_none());
}

#[test]
fn every_phase_sees_the_request_as_the_request_filters_left_it() {
    let f = Fixture::new();
    let closed = FailurePolicy::FailClosed;
    // `on-request` (0.1) rewrites the path to `/b` (the `forward` record's `path` option at
    // offset 28 of the variant's payload).
    let to_b = wasm::module(&format!(
        r#"(data (i32.const 3020) "/b") {}"#,
        wasm::on_request(&format!(
            "{} (i32.store8 (i32.const 2076) (i32.const 1))
             (i32.store (i32.const 2080) (i32.const 3020)) (i32.store (i32.const 2084) (i32.const 2))
             (drop) (i32.const 2048)",
            wasm::CONTINUE
        ))
    ));
    // `on-response` (0.2) sets `x-path` to the path it reads.
    let reads_path = wasm::module_v2(
        r#"(func (export "breakwater:filter/on-response@0.2.0#handle") (param $req i32) (param $resp i32) (result i32)
    (memory.fill (i32.const 4000) (i32.const 0) (i32.const 24))
    (call $path (local.get $req) (i32.const 3020))
    (i32.store (i32.const 4000) (i32.const 4100)) (i32.store (i32.const 4004) (i32.const 1))
    (i32.store (i32.const 4100) (i32.const 3400)) (i32.store (i32.const 4104) (i32.const 6))
    (i32.store (i32.const 4108) (i32.load (i32.const 3020)))
    (i32.store (i32.const 4112) (i32.load (i32.const 3024)))
    (call $drop_req (local.get $req))
    (call $drop_resp (local.get $resp))
    (i32.const 4000))
  (data (i32.const 3400) "x-path")"#,
    );
    let reads_path = wasm::component_v2("response-filter", &reads_path);
    let plan = f.plan(vec![
        f.filter_bytes("reads-path", reads_path, closed),
        f.filter("to-b", "request-filter", &to_b, closed),
    ]);
    let mut chain = FilterChain::default();
    let mut req = request();
    assert!(chain
        .on_request(&plan, &mut req, &client())
        .unwrap()
        .is_none());
    assert_eq!(req.uri.path(), "/b", "the request filter's rewrite");
    let mut resp = ResponseHeader::build(200, None).unwrap();
    chain.on_response(&plan, &req, &mut resp).unwrap();
    assert_eq!(
        resp.headers["x-path"], "/b",
        "an earlier filter's on-response sees the path a later one rewrote"
    );
}
