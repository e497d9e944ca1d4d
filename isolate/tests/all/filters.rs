//! Filter components end to end through the runtime: every WIT function, every error, and
//! isolation between requests (sequential and concurrent).

use breakwater_tests::wasm as support;

use breakwater_isolate::{FilterSettings, Headers, IsolateError, RequestDecision};
use std::collections::HashMap;
use std::time::Duration;
use support::*;

#[test]
fn every_request_starts_from_the_snapshot_sequentially() {
    let rt = runtime();
    let f = load(&rt, "counter", &counter(), FilterSettings::default());
    for _ in 0..50 {
        let mut s = f.instance().unwrap();
        let d = s.on_request(&request(&[])).unwrap().unwrap();
        match d {
            RequestDecision::Respond(r) => assert_eq!(r.status.as_u16(), 200, "state leaked"),
            other => panic!("{other:?}"),
        }
    }
    // The instances after the first were reset in place: the test is of reset, too.
    assert!(f.resets() > 0, "no instance was reset in place");
}

/// Lowering a request whose headers outgrow the guest's memory: the guest's `cabi_realloc`
/// grows it in the middle of the lowering, and every later string must be written into the
/// grown memory (the host must not keep the size it saw before). Twice: the second request
/// runs on the instance reset in place, back at its initial 4 pages.
#[test]
fn lowering_follows_memory_grown_by_the_guests_realloc() {
    let rt = runtime();
    let f = load(
        &rt,
        "grow",
        &component("request-filter", &module(&on_request(CONTINUE))),
        FilterSettings::default(),
    );
    let big = vec![b'v'; 64 << 10];
    let names: Vec<String> = (0..12).map(|i| format!("x-big-{i}")).collect();
    let headers: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), big.as_slice())).collect();
    for round in 0..2 {
        let mut s = f.instance().unwrap();
        match s.on_request(&request(&headers)).unwrap() {
            Ok(RequestDecision::Continue(_)) => {}
            other => panic!("round {round}: {other:?}"),
        }
    }
}

#[test]
fn every_request_starts_from_the_snapshot_concurrently() {
    let rt = runtime();
    let f = load(&rt, "counter", &counter(), FilterSettings::default());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let f = f.clone();
            scope.spawn(move || {
                for _ in 0..100 {
                    let mut s = f.instance().unwrap();
                    match s.on_request(&request(&[])).unwrap().unwrap() {
                        RequestDecision::Respond(r) => {
                            assert_eq!(r.status.as_u16(), 200, "state leaked")
                        }
                        other => panic!("{other:?}"),
                    }
                }
            });
        }
    });
    assert_eq!(f.in_use(), 0);
    assert!(f.resets() > 0, "no instance was reset in place");
}

#[test]
fn state_carries_from_request_to_response_of_the_same_request() {
    // on-request stores the request's path length; on-response returns it as a header.
    let req = format!("(i32.store (i32.const 1024) (local.get 7)) {CONTINUE}");
    let resp = "
        (i32.store8 (i32.const 4000) (i32.add (i32.const 48) (i32.load (i32.const 1024))))
        (memory.fill (i32.const 3000) (i32.const 0) (i32.const 24))
        (i32.store (i32.const 3000) (i32.const 3100))
        (i32.store (i32.const 3004) (i32.const 1))
        (i32.store (i32.const 3100) (i32.const 3200))
        (i32.store (i32.const 3104) (i32.const 8))
        (i32.store (i32.const 3108) (i32.const 4000))
        (i32.store (i32.const 3112) (i32.const 1))
        (i32.const 3000)";
    let wat = module(&format!(
        "{}\n{}\n(data (i32.const 3200) \"x-pathln\")",
        on_request(&req),
        on_response(resp)
    ));
    let rt = runtime();
    let f = load(
        &rt,
        "both",
        &component("filter", &wat),
        FilterSettings::default(),
    );
    assert!(f.has_on_request() && f.has_on_response());
    let mut s = f.instance().unwrap();
    let r = request(&[]);
    assert_eq!(
        s.on_request(&r).unwrap().unwrap(),
        RequestDecision::Continue(Default::default())
    );
    let edits = s
        .on_response(&r, 200, Headers::List(&[("server", b"x")]))
        .unwrap()
        .unwrap();
    assert_eq!(edits.set.len(), 1);
    assert_eq!(edits.set[0].0.as_str(), "x-pathln");
    assert_eq!(edits.set[0].1.as_bytes(), b"2", "len(\"/p\") carried over");
    // A new request does not see it.
    let mut s = f.instance().unwrap();
    let edits = s.on_response(&r, 200, Headers::List(&[])).unwrap().unwrap();
    assert_eq!(edits.set[0].1.as_bytes(), b"0");
}

#[test]
fn continue_with_edits_path_pool_and_response_headers() {
    // Result area 2048: disc 0; forward at 2052: headers.set (2052,2056), append, remove,
    // path option at 2076, query option at 2088, pool option at 2100, response-headers 2112.
    let body = "
        (memory.fill (i32.const 2048) (i32.const 0) (i32.const 96))
        (i32.store (i32.const 2052) (i32.const 3000)) (i32.store (i32.const 2056) (i32.const 1))
        (i32.store (i32.const 3000) (i32.const 3200)) (i32.store (i32.const 3004) (i32.const 8))
        (i32.store (i32.const 3008) (i32.const 3300)) (i32.store (i32.const 3012) (i32.const 3))
        (i32.store (i32.const 2068) (i32.const 3400)) (i32.store (i32.const 2072) (i32.const 1))
        (i32.store (i32.const 3400) (i32.const 3500)) (i32.store (i32.const 3404) (i32.const 6))
        (i32.store8 (i32.const 2076) (i32.const 1))
        (i32.store (i32.const 2080) (i32.const 3600)) (i32.store (i32.const 2084) (i32.const 4))
        (i32.store8 (i32.const 2100) (i32.const 1))
        (i32.store (i32.const 2104) (i32.const 3700)) (i32.store (i32.const 2108) (i32.const 1))
        (i32.store (i32.const 2112) (i32.const 3000)) (i32.store (i32.const 2116) (i32.const 1))
        (i32.const 2048)";
    let wat = module(&format!(
        "{}\n(data (i32.const 3200) \"x-filter\") (data (i32.const 3300) \"yes\") (data (i32.const 3500) \"cookie\") (data (i32.const 3600) \"/new\") (data (i32.const 3700) \"b\")",
        on_request(body)
    ));
    let rt = runtime();
    let f = load(
        &rt,
        "edit",
        &component("request-filter", &wat),
        FilterSettings::default(),
    );
    let mut s = f.instance().unwrap();
    let RequestDecision::Continue(fwd) = s
        .on_request(&request(&[("cookie", b"a=1")]))
        .unwrap()
        .unwrap()
    else {
        panic!("expected continue")
    };
    assert_eq!(
        fwd.edits.set,
        vec![("x-filter".parse().unwrap(), "yes".parse().unwrap())]
    );
    assert_eq!(fwd.edits.remove, vec![http::header::COOKIE]);
    assert_eq!(fwd.path.as_deref(), Some("/new"));
    assert_eq!(fwd.query, None);
    assert_eq!(fwd.pool.as_deref(), Some("b"));
    assert_eq!(fwd.response_headers.len(), 1);
}

#[test]
fn config_and_log_imports() {
    // Respond with the body config.get("greeting") returns (option<string> at 6000).
    let body = format!(
        "(call $log (i32.const 1) (i32.const 3200) (i32.const 5))
         (call $config_get (i32.const 3300) (i32.const 8) (i32.const 6000))
         {}",
        respond("(i32.const 200)", 0, "(i32.load (i32.const 6008))")
    )
    .replace(
        "(i32.store (i32.const 2064) (i32.const 0))",
        "(i32.store (i32.const 2064) (i32.load (i32.const 6004)))",
    );
    let wat = module(&format!(
        "{}\n(data (i32.const 3200) \"hello\") (data (i32.const 3300) \"greeting\")",
        on_request(&body)
    ));
    let rt = runtime();
    let settings = FilterSettings {
        config: HashMap::from([("greeting".to_string(), "bonjour".to_string())]),
        ..FilterSettings::default()
    };
    let f = load(&rt, "cfg", &component("request-filter", &wat), settings);
    let RequestDecision::Respond(r) = f
        .instance()
        .unwrap()
        .on_request(&request(&[]))
        .unwrap()
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r.body, b"bonjour");
}

fn expect_err(
    wat_body: &str,
    settings: FilterSettings,
) -> (IsolateError, breakwater_isolate::Filter) {
    let rt = runtime();
    let f = load(
        &rt,
        "bad",
        &component("request-filter", &module(&on_request(wat_body))),
        settings,
    );
    let err = f
        .instance()
        .unwrap()
        .on_request(&request(&[]))
        .unwrap()
        .unwrap_err();
    (err, f)
}

#[test]
fn an_endless_loop_is_stopped_at_the_deadline() {
    let settings = FilterSettings {
        deadline: Duration::from_millis(20),
        ..FilterSettings::default()
    };
    let (err, f) = expect_err("(loop $l (br $l)) (i32.const 0)", settings);
    assert!(
        matches!(
            err,
            IsolateError::Deadline {
                deadline_ms: 20,
                ..
            }
        ),
        "{err}"
    );
    // The next request through the same filter is served (and stopped) the same way.
    let err = f
        .instance()
        .unwrap()
        .on_request(&request(&[]))
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), "deadline");
}

#[test]
fn a_memory_bomb_is_stopped_at_the_limit() {
    let settings = FilterSettings {
        max_memory_bytes: 2 << 20,
        ..FilterSettings::default()
    };
    let (err, _) = expect_err(
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) (i32.const 0)",
        settings,
    );
    assert!(
        matches!(
            err,
            IsolateError::OutOfMemory {
                limit_bytes: 2097152,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_trap_is_reported_with_a_backtrace() {
    let (err, _) = expect_err("(unreachable)", FilterSettings::default());
    let IsolateError::Trap {
        message, backtrace, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(message.contains("unreachable"), "{message}");
    assert!(backtrace.contains("on_request"), "{backtrace}");
}

#[test]
fn an_invalid_header_name_is_invalid_output() {
    let body = "
        (memory.fill (i32.const 2048) (i32.const 0) (i32.const 96))
        (i32.store (i32.const 2052) (i32.const 3000)) (i32.store (i32.const 2056) (i32.const 1))
        (i32.store (i32.const 3000) (i32.const 3200)) (i32.store (i32.const 3004) (i32.const 10))
        (i32.store (i32.const 3008) (i32.const 3300)) (i32.store (i32.const 3012) (i32.const 1))
        (i32.const 2048)";
    let wat = module(&format!(
        "{}\n(data (i32.const 3200) \"bad header\") (data (i32.const 3300) \"x\")",
        on_request(body)
    ));
    let rt = runtime();
    let f = load(
        &rt,
        "bad",
        &component("request-filter", &wat),
        FilterSettings::default(),
    );
    let err = f
        .instance()
        .unwrap()
        .on_request(&request(&[]))
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, IsolateError::InvalidOutput { reason, .. } if reason.contains("bad header")),
        "{err}"
    );
}

#[test]
fn an_invalid_status_is_invalid_output() {
    let (err, _) = expect_err(
        &respond("(i32.const 42)", 0, "(i32.const 0)"),
        FilterSettings::default(),
    );
    assert_eq!(err.kind(), "invalid_output", "{err}");
}

#[test]
fn an_import_that_is_not_granted_fails_at_load() {
    let wat = r#"(component
        (import "example:secrets/vault@1.0.0" (instance (export "get" (func))))
    )"#;
    let rt = runtime();
    let err = rt
        .load_filter_bytes(
            "fs",
            std::path::Path::new("fs.wasm"),
            wat.as_bytes(),
            FilterSettings::default(),
        )
        .err()
        .expect("loaded a component with an ungranted import");
    assert!(
        matches!(&err, IsolateError::Link { reason, .. } if reason.contains("example:secrets/vault")),
        "{err}"
    );
}

#[test]
fn bad_bytes_and_phaseless_components_fail_at_load() {
    let rt = runtime();
    let err = rt
        .load_filter_bytes(
            "junk",
            std::path::Path::new("junk.wasm"),
            b"\0asm junk",
            FilterSettings::default(),
        )
        .err()
        .unwrap();
    assert!(matches!(err, IsolateError::Load { .. }), "{err}");
    let err = rt
        .load_filter_bytes(
            "empty",
            std::path::Path::new("empty.wasm"),
            b"(component)",
            FilterSettings::default(),
        )
        .err()
        .unwrap();
    assert!(matches!(err, IsolateError::NoPhase { .. }), "{err}");
}

#[test]
fn the_concurrency_limit_fails_fast() {
    let rt = runtime();
    let settings = FilterSettings {
        max_concurrency: 2,
        ..FilterSettings::default()
    };
    let f = load(&rt, "c", &counter(), settings);
    let a = f.instance().unwrap();
    let _b = f.instance().unwrap();
    let err = f.instance().err().unwrap();
    assert!(
        matches!(err, IsolateError::LimitReached { limit: 2, .. }),
        "{err}"
    );
    drop(a);
    assert!(f.instance().is_ok(), "a freed slot is usable again");
}

/// Counts the runtime's compiles and cache hits.
#[derive(Default)]
struct Compiles {
    compiled: std::sync::atomic::AtomicUsize,
    hits: std::sync::atomic::AtomicUsize,
}

impl breakwater_isolate::Observer for Compiles {
    fn cold_start(&self, _: &str, _: std::time::Duration) {}
    fn compiled(&self, _: std::time::Duration) {
        self.compiled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn cache_hit(&self) {
        self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Compiles {
    fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.compiled.load(Relaxed), self.hits.load(Relaxed))
    }
}

/// The first runtime compiles and stores the component (and proves it); a second one (a
/// later process) defers it: nothing is compiled or even mapped at load, and its first
/// instance loads it from the cache, once, and works.
#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let settings = breakwater_isolate::RuntimeSettings {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: 50,
        ..Default::default()
    };
    let bytes = counter();
    let rt = breakwater_isolate::Runtime::new(settings.clone()).unwrap();
    let first = std::sync::Arc::new(Compiles::default());
    rt.observe(first.clone());
    load(&rt, "c", &bytes, FilterSettings::default());
    assert_eq!(
        first.counts(),
        (1, 0),
        "compiled, not found in the empty cache"
    );
    let rt2 = breakwater_isolate::Runtime::new(settings).unwrap();
    let second = std::sync::Arc::new(Compiles::default());
    rt2.observe(second.clone());
    let f = load(&rt2, "c", &bytes, FilterSettings::default());
    assert_eq!(second.counts(), (0, 0), "deferred: nothing loaded yet");
    assert!(!f.is_loaded());
    assert!(
        f.has_on_request(),
        "its phases come from the proof's marker"
    );
    for _ in 0..2 {
        assert!(f
            .instance()
            .unwrap()
            .on_request(&request(&[]))
            .unwrap()
            .is_ok());
    }
    assert_eq!(
        second.counts(),
        (0, 1),
        "loaded from the cache by its first instance, once; nothing compiled"
    );
    // An explicit prewarm keeps instances from load: not deferred.
    let pinned = load(
        &rt2,
        "p",
        &bytes,
        FilterSettings {
            prewarm: Some(1),
            ..FilterSettings::default()
        },
    );
    assert!(pinned.is_loaded());
}

#[test]
fn body_phases_see_whole_bodies_and_may_replace_them() {
    let rt = runtime();
    let f = load(
        &rt,
        "upper",
        &body_filter(&upper_body(64), &upper_body(76)),
        FilterSettings::default(),
    );
    assert!(f.has_on_request_body() && f.has_on_response_body());
    let mut s = f.instance().unwrap();
    assert!(s.on_request(&request(&[])).unwrap().is_ok());
    let body = s
        .on_request_body(&request(&[]), b"hello, body")
        .unwrap()
        .unwrap();
    assert_eq!(body.as_deref(), Some(&b"HELLO, BODY"[..]));
    let headers: &[(&str, &[u8])] = &[("content-type", b"text/plain")];
    let body = s
        .on_response_body(&request(&[]), 200, headers.into(), b"from the origin")
        .unwrap()
        .unwrap();
    assert_eq!(body.as_deref(), Some(&b"FROM THE ORIGIN"[..]));

    let keep = load(
        &rt,
        "keep",
        &body_filter(KEEP_BODY, KEEP_BODY),
        FilterSettings::default(),
    );
    let mut s = keep.instance().unwrap();
    assert_eq!(
        s.on_request_body(&request(&[]), b"x").unwrap().unwrap(),
        None
    );

    // Filters without body phases say so, and the host skips buffering for them.
    let plain = load(
        &rt,
        "plain",
        &component("request-filter", &module(&on_request(CONTINUE))),
        FilterSettings::default(),
    );
    assert!(!plain.has_on_request_body() && !plain.has_on_response_body());
    assert!(plain
        .instance()
        .unwrap()
        .on_request_body(&request(&[]), b"x")
        .is_none());

    let trap = load(
        &rt,
        "body-trap",
        &body_filter("(unreachable)", KEEP_BODY),
        FilterSettings::default(),
    );
    let err = trap
        .instance()
        .unwrap()
        .on_request_body(&request(&[]), b"x")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), "trap", "{err}");
}

#[test]
fn init_runs_once_at_load_and_every_request_starts_from_its_snapshot() {
    // `wizer-initialize` counts its runs at 8188 and builds a table of squares; each request
    // answers table[12] (144) + 54 + its runs + its own count of requests in memory: 200 only
    // when the table is there, init ran once (at load, not again per instance) and no
    // request's state leaked into the next.
    let init = r#"(func (export "wizer-initialize")
        (local $i i32)
        (i32.store (i32.const 8188) (i32.add (i32.load (i32.const 8188)) (i32.const 1)))
        (loop $l
          (i32.store (i32.add (i32.const 8192) (i32.shl (local.get $i) (i32.const 2)))
                     (i32.mul (local.get $i) (local.get $i)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 256)))))"#;
    let status = "(i32.store (i32.const 1024) (i32.add (i32.load (i32.const 1024)) (i32.const 1)))
         (i32.add (i32.add (i32.load (i32.const 8240)) (i32.const 54))
           (i32.add (i32.load (i32.const 8188)) (i32.load (i32.const 1024))))";
    let req = respond(
        &format!("(block (result i32) {status})"),
        3000,
        "(i32.const 0)",
    );
    let bytes = component(
        "filter-with-init",
        &module(&format!(
            "{init}\n{}\n{}",
            on_request(&req),
            on_response(
                "(memory.fill (i32.const 4000) (i32.const 0) (i32.const 24)) (i32.const 4000)"
            )
        )),
    );
    let rt = runtime();
    let f = load(&rt, "init", &bytes, FilterSettings::default());
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let f = f.clone();
        tasks.push(std::thread::spawn(move || {
            for _ in 0..25 {
                let mut s = f.instance().unwrap();
                match s.on_request(&request(&[])).unwrap() {
                    Ok(RequestDecision::Respond(r)) => assert_eq!(r.status, 200),
                    other => panic!("{other:?}"),
                }
            }
        }));
    }
    for t in tasks {
        t.join().unwrap();
    }

    // An init that traps, one that never ends (stopped at the init deadline, 10 s), and one
    // that grows its memory without end (stopped at the filter's memory limit, where a grow
    // traps rather than fails) fail the load with an error that says so.
    for (name, body, says) in [
        ("trapping-init", "(unreachable)", "unreachable"),
        ("endless-init", "(loop $l (br $l))", "interrupt"),
        (
            "hungry-init",
            "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))",
            "memory limit",
        ),
        (
            // Stops at the limit: reading its state back for the snapshot then needs memory
            // it cannot have (this panicked the loader before).
            "full-init",
            "(drop (memory.grow (i32.sub (i32.const 256) (memory.size))))",
            "memory limit",
        ),
    ] {
        let bytes = component(
            "filter-with-init",
            &module(&format!(
                "(func (export \"wizer-initialize\") {body})\n{}\n{}",
                on_request(CONTINUE),
                on_response("(i32.const 4000)")
            )),
        );
        let err = rt
            .load_filter_bytes(
                name,
                std::path::Path::new(&format!("{name}.wasm")),
                &bytes,
                FilterSettings::default(),
            )
            .err()
            .unwrap_or_else(|| panic!("{name} loaded"));
        let text = err.to_string();
        assert!(
            matches!(err, IsolateError::Load { .. })
                && text.contains("init")
                && text.contains(says),
            "{name}: {err}"
        );
    }
}

/// An instance whose call failed (here `on-response` traps, after `on-request` counted the
/// request in memory and a global) is dropped, never reset and served again: the reset count
/// does not move, and the next requests start from a fresh or reset instance (status 200).
#[test]
fn a_filter_instance_that_failed_is_never_reset() {
    let body = "(global.set $count (i32.add (global.get $count) (i32.const 1)))
         (i32.store (i32.const 1024) (i32.add (i32.load (i32.const 1024)) (i32.const 1)))";
    let req = respond(
        &format!(
            "(block (result i32) {body} \
             (i32.add (i32.const 198) (i32.add (global.get $count) (i32.load (i32.const 1024)))))"
        ),
        0,
        "(i32.const 0)",
    );
    let bytes = component(
        "filter",
        &module(&format!(
            "{}\n{}",
            on_request(&req),
            on_response("(unreachable)")
        )),
    );
    let rt = runtime();
    let f = load(&rt, "fails", &bytes, FilterSettings::default());
    let answer = |f: &breakwater_isolate::Filter| {
        let mut s = f.instance().unwrap();
        match s.on_request(&request(&[])).unwrap().unwrap() {
            RequestDecision::Respond(r) => assert_eq!(r.status.as_u16(), 200, "state leaked"),
            other => panic!("{other:?}"),
        }
        s
    };
    for _ in 0..5 {
        drop(answer(&f));
    }
    let resets = f.resets();
    assert!(resets > 0, "no instance was reset in place");
    for _ in 0..5 {
        let mut s = answer(&f);
        let err = s
            .on_response(&request(&[]), 200, Headers::List(&[]))
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind(), "trap", "{err}");
    }
    assert_eq!(f.resets(), resets, "an instance that trapped was reset");
    drop(answer(&f));
    assert_eq!(f.resets(), resets + 1);
}
