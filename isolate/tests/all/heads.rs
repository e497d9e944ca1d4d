//! Interface 0.2: the heads lent to a filter for one call and read through methods. What it
//! reads is what the host holds (either way the host holds headers), a name is matched
//! without regard to case, and a handle the call was not given traps.

use breakwater_tests::wasm as support;

use breakwater_isolate::{FilterSettings, Headers, RequestDecision};
use http::{HeaderMap, HeaderValue};
use support::*;

fn respond(d: RequestDecision) -> (u16, Vec<u8>) {
    match d {
        RequestDecision::Respond(r) => (r.status.as_u16(), r.body),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn a_filter_reads_the_header_it_asks_for_in_any_case() {
    let rt = runtime();
    let f = load(&rt, "prober", &prober(), FilterSettings::default());
    assert!(f.has_on_request() && f.has_on_response());
    // From a list, as the benchmarks pass it.
    let headers: &[(&str, &[u8])] = &[("accept", b"*/*"), ("x-probe", b"hello")];
    let mut s = f.instance().unwrap();
    let d = s.on_request(&request(headers)).unwrap().unwrap();
    assert_eq!(respond(d), (200, b"hello".to_vec()));
    // From a header map, as the proxy passes it.
    let mut map = HeaderMap::new();
    map.append("accept", HeaderValue::from_static("*/*"));
    map.append("x-probe", HeaderValue::from_static("from a map"));
    let mut req = request(&[]);
    req.headers = Headers::Map(&map);
    let mut s = f.instance().unwrap();
    let d = s.on_request(&req).unwrap().unwrap();
    assert_eq!(respond(d), (200, b"from a map".to_vec()));
}

#[test]
fn a_filter_without_its_header_counts_the_others() {
    let rt = runtime();
    let f = load(&rt, "prober", &prober(), FilterSettings::default());
    let headers: &[(&str, &[u8])] = &[("a", b"1"), ("b", b"2"), ("a", b"3")];
    for _ in 0..3 {
        let mut s = f.instance().unwrap();
        let d = s.on_request(&request(headers)).unwrap().unwrap();
        assert_eq!(respond(d).0, 403, "400 + three headers");
    }
}

#[test]
fn on_response_reads_the_response_head_and_the_request() {
    let rt = runtime();
    let f = load(&rt, "prober", &prober(), FilterSettings::default());
    let mut s = f.instance().unwrap();
    let mut map = HeaderMap::new();
    map.append("Server", HeaderValue::from_static("nginx"));
    let edits = s
        .on_response(&request(&[]), 200, Headers::Map(&map))
        .unwrap()
        .unwrap();
    let set: Vec<(&str, &[u8])> = edits
        .set
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    assert_eq!(
        set,
        [("x-origin-server", &b"nginx"[..]), ("x-path", &b"/p"[..])]
    );
    // Another status: the guest read it and left the response alone.
    let edits = s
        .on_response(&request(&[]), 404, Headers::Map(&map))
        .unwrap()
        .unwrap();
    assert!(edits.is_empty(), "{edits:?}");
}

/// A handle the guest was not given (here: made up) traps: the host never reads a head
/// through it, the request fails, and the instance is not used again.
#[test]
fn a_handle_the_call_was_not_given_traps() {
    let extra = r#"
  (func (export "breakwater:filter/on-request@0.2.0#handle") (param $req i32) (result i32)
    (call $path (i32.add (local.get $req) (i32.const 99)) (i32.const 3000))
    (memory.fill (i32.const 2048) (i32.const 0) (i32.const 96))
    (i32.const 2048))"#;
    let rt = runtime();
    let wasm = component_v2("request-filter", &module_v2(extra));
    let f = load(&rt, "forger", &wasm, FilterSettings::default());
    for _ in 0..3 {
        let mut s = f.instance().unwrap();
        let err = s.on_request(&request(&[])).unwrap().unwrap_err();
        assert_eq!(err.kind(), "trap", "{err}");
    }
    assert_eq!(f.resets(), 0, "an instance that trapped was reset and kept");
}

/// Each call reads its own request: instances are reset in place and reused, and what the
/// last request lent is gone.
#[test]
fn each_call_reads_the_heads_it_was_lent() {
    let rt = runtime();
    let f = load(&rt, "prober", &prober(), FilterSettings::default());
    for i in 0..20 {
        let value = format!("request {i}");
        let headers: &[(&str, &[u8])] = &[("x-probe", value.as_bytes())];
        let mut s = f.instance().unwrap();
        let d = s.on_request(&request(headers)).unwrap().unwrap();
        assert_eq!(respond(d), (200, value.into_bytes()));
    }
    assert!(f.resets() > 0, "no instance was reset in place");
}

/// The body phases of 0.2: the heads are lent beside the body. `on-request-body` replaces the
/// body with itself, its first byte set to the number of request headers it read;
/// `on-response-body` keeps the body unless the status it reads is 200, and then replaces it
/// with its last half.
#[test]
fn body_phases_see_the_body_and_the_lent_heads() {
    let extra = r#"
  (func (export "breakwater:filter/on-request@0.2.0#handle") (param $req i32) (result i32)
    (call $drop_req (local.get $req))
    (memory.fill (i32.const 2048) (i32.const 0) (i32.const 96)) (i32.const 2048))
  (func (export "breakwater:filter/on-response@0.2.0#handle") (param $req i32) (param $resp i32) (result i32)
    (call $drop_req (local.get $req)) (call $drop_resp (local.get $resp))
    (memory.fill (i32.const 4000) (i32.const 0) (i32.const 24)) (i32.const 4000))
  (func (export "breakwater:filter/on-request-body@0.2.0#handle")
        (param $req i32) (param $p i32) (param $n i32) (result i32)
    (call $headers (local.get $req) (i32.const 3040))
    (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.load (i32.const 3044))))
    (call $drop_req (local.get $req))
    (i32.store8 (i32.const 5000) (i32.const 1))
    (i32.store (i32.const 5004) (local.get $p)) (i32.store (i32.const 5008) (local.get $n))
    (i32.const 5000))
  (func (export "breakwater:filter/on-response-body@0.2.0#handle")
        (param $req i32) (param $resp i32) (param $p i32) (param $n i32) (result i32)
    (i32.store8 (i32.const 5000) (i32.const 0))
    (if (i32.eq (call $status (local.get $resp)) (i32.const 200))
      (then
        (i32.store8 (i32.const 5000) (i32.const 1))
        (i32.store (i32.const 5004) (i32.add (local.get $p) (i32.shr_u (local.get $n) (i32.const 1))))
        (i32.store (i32.const 5008) (i32.sub (local.get $n) (i32.shr_u (local.get $n) (i32.const 1))))))
    (call $drop_req (local.get $req)) (call $drop_resp (local.get $resp))
    (i32.const 5000))"#;
    let rt = runtime();
    let wasm = component_v2("body-filter", &module_v2(extra));
    let f = load(&rt, "body", &wasm, FilterSettings::default());
    assert!(f.has_on_request_body() && f.has_on_response_body());
    let headers: &[(&str, &[u8])] = &[("a", b"1"), ("b", b"2")];
    let mut s = f.instance().unwrap();
    let body = s
        .on_request_body(&request(headers), b"xbody")
        .unwrap()
        .unwrap();
    assert_eq!(body.as_deref(), Some(&b"2body"[..]), "two request headers");
    let resp: &[(&str, &[u8])] = &[("content-type", b"text/plain")];
    let body = s
        .on_response_body(&request(headers), 200, resp.into(), b"abcdef")
        .unwrap()
        .unwrap();
    assert_eq!(body.as_deref(), Some(&b"def"[..]));
    let body = s
        .on_response_body(&request(headers), 404, resp.into(), b"abcdef")
        .unwrap()
        .unwrap();
    assert_eq!(body, None, "kept: the status it read was not 200");
}

/// A component that exports phases of both versions is refused at load, by name: the host
/// would call one version's phases and silently skip the other's.
#[test]
fn phases_of_two_versions_are_refused() {
    let wit = "package test:mixed;
world mixed {
  export breakwater:filter/on-request@0.1.0;
  export breakwater:filter/on-response@0.2.0;
}";
    let core = module_v2(&format!(
        r#"{}
  (func (export "breakwater:filter/on-response@0.2.0#handle") (param i32 i32) (result i32)
    (call $drop_req (local.get 0)) (call $drop_resp (local.get 1))
    (memory.fill (i32.const 4000) (i32.const 0) (i32.const 24)) (i32.const 4000))"#,
        on_request(CONTINUE)
    ));
    let wasm = component_with(wit, "mixed", &core);
    let rt = runtime();
    let err = rt
        .load_filter_bytes(
            "mixed",
            std::path::Path::new("mixed.wasm"),
            &wasm,
            FilterSettings::default(),
        )
        .err()
        .expect("a mix of versions loads");
    let text = err.to_string();
    assert!(
        text.contains("two versions of the filter interface (0.2 and 0.1)"),
        "{text}"
    );
    assert!(text.contains("mixed.wasm"), "{text}");
}
