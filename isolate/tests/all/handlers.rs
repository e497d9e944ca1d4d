//! `wasi:http` handler components: served through wasmtime-wasi-http, one fresh instance per
//! request, with deadlines, memory and concurrency limits, and no outgoing HTTP unless granted.

use breakwater_tests::wasm as support;

use breakwater_isolate::{HandlerSettings, IsolateError, RequestBody, Warmup, WarmupRequest};
use bytes::Bytes;
use std::time::Duration;
use support::*;

fn get(path: &str) -> http::Request<RequestBody> {
    http::Request::builder()
        .uri(format!("http://example.com{path}"))
        .body(RequestBody::empty())
        .unwrap()
}

#[tokio::test]
async fn hello_handler_answers_with_headers_and_body() {
    let rt = runtime();
    let h = load_handler(
        &rt,
        "hello",
        &guest_handler("hello"),
        HandlerSettings::default(),
    );
    for _ in 0..3 {
        let resp = h.handle(get("/hello")).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
        let body = resp.into_body().collect(1 << 20).await.unwrap();
        assert_eq!(
            &body[..],
            b"Hello from a WebAssembly handler at the edge.\n"
        );
    }
    // A guest may go on after its body ends (the instance is in use until `handle`
    // returns), and may run on the guest threads: its slot is given back soon after.
    breakwater_tests::eventually(10, "every instance given back", || {
        let h = h.clone();
        async move { h.in_use() == 0 }
    })
    .await;
}

/// A POST to `path` whose body is fed through the returned sender.
fn fed_post(
    path: &str,
) -> (
    tokio::sync::mpsc::UnboundedSender<Bytes>,
    http::Request<RequestBody>,
) {
    let (tx, body) = RequestBody::channel();
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://example.com{path}"))
        .body(body)
        .unwrap();
    (tx, req)
}

/// The echo guest (`isolate/guests/wat/echo.wat`), loaded with the default settings.
fn echo(rt: &std::sync::Arc<breakwater_isolate::Runtime>) -> breakwater_isolate::Handler {
    load_handler(
        rt,
        "echo",
        &guest_handler("echo"),
        HandlerSettings::default(),
    )
}

#[tokio::test]
async fn echo_handler_streams_the_request_body_back() {
    let rt = runtime();
    let h = echo(&rt);
    let (tx, req) = fed_post("/echo");
    let feeder = tokio::spawn(async move {
        for i in 0..50u8 {
            tx.send(Bytes::from(vec![b'a' + (i % 26); 10_000])).unwrap();
            tokio::task::yield_now().await;
        }
    });
    let resp = h.handle(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect(1 << 20).await.unwrap();
    feeder.await.unwrap();
    assert_eq!(body.len(), 500_000);
    assert_eq!(body[10_000], b'b');
    assert_eq!(body[499_999], b'a' + 49 % 26);
}

/// A guest that waits (here for more of the request body) has its head and what it wrote
/// so far answered at once: the response streams; it is not held until the guest returns.
#[tokio::test]
async fn a_waiting_guests_answer_goes_out_before_it_returns() {
    let rt = runtime();
    let h = echo(&rt);
    let (tx, req) = fed_post("/echo");
    tx.send(Bytes::from_static(b"first")).unwrap();
    let wait = Duration::from_secs(10);
    let resp = tokio::time::timeout(wait, h.handle(req))
        .await
        .expect("the head comes while the guest waits for the rest of the request")
        .unwrap();
    let mut body = resp.into_body();
    let mut echoed = Vec::new();
    while echoed.len() < 5 {
        let chunk = tokio::time::timeout(wait, body.chunk())
            .await
            .expect("what the guest wrote comes while it waits")
            .expect("more body")
            .unwrap();
        echoed.extend_from_slice(&chunk);
    }
    assert_eq!(&echoed[..], b"first");
    tx.send(Bytes::from_static(b"second")).unwrap();
    drop(tx);
    let rest = body.collect(1 << 20).await.unwrap();
    assert_eq!(&rest[..], b"second");
}

#[tokio::test]
async fn no_state_crosses_requests_sequentially_or_concurrently() {
    let rt = runtime();
    let h = load_handler(
        &rt,
        "count",
        &counting_handler(),
        HandlerSettings::default(),
    );
    for _ in 0..20 {
        assert_eq!(h.handle(get("/")).await.unwrap().status(), 200);
    }
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                assert_eq!(h.handle(get("/")).await.unwrap().status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn request(method: &str, path: &str) -> http::Request<RequestBody> {
    http::Request::builder()
        .method(method)
        .uri(format!("http://example.com{path}"))
        .body(RequestBody::empty())
        .unwrap()
}

fn warm_with_get() -> Warmup {
    Warmup::Request(WarmupRequest {
        method: http::Method::GET,
        path: "/".into(),
    })
}

/// Counts the request in a global and in memory, then by the method (its first byte at 700):
/// POST traps, PUT runs for ever, DELETE grows its memory without bound.
const COUNT_THEN_FAIL_BY_METHOD: &str = "
         (global.set $count (i32.add (global.get $count) (i32.const 1)))
         (i32.store (i32.const 512) (i32.add (i32.load (i32.const 512)) (i32.const 1)))
         (if (i32.eq (i32.load8_u (i32.const 700)) (i32.const 2)) (then unreachable))
         (if (i32.eq (i32.load8_u (i32.const 700)) (i32.const 3)) (then (loop $l (br $l))))
         (if (i32.eq (i32.load8_u (i32.const 700)) (i32.const 4)) (then
           (loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))))";

/// Counts requests in a global and in linear memory (the "secrets" a request leaves), drops its
/// request handle, then by method: GET answers `198 + global + memory`; POST traps, PUT runs
/// for ever, DELETE grows its memory without bound.
fn tidy_counter() -> Vec<u8> {
    handler_component(&handler_module(&format!(
        "(call $method (local.get $request) (i32.const 700))
         (call $drop_request (local.get $request))
         {COUNT_THEN_FAIL_BY_METHOD}
         (call $respond (local.get $out)
           (i32.add (i32.const 198) (i32.add (global.get $count) (i32.load (i32.const 512)))))",
    )))
}

/// A warm snapshot holds what the warm-up request left (a count of 1 in the global and in
/// memory): every request starts from it, so each answers 202, sequentially, concurrently, and
/// after requests that trapped, ran to their deadline or ran out of memory having written
/// their own counts. A cold instance answers 200.
#[tokio::test(flavor = "multi_thread")]
async fn every_request_starts_from_the_warm_snapshot() {
    let rt = runtime();
    // A deadline far from what a trap or the memory limit takes even on a loaded machine
    // (guests that turn dear run on lower-priority threads), and a short one for the loop.
    let settings = |warmup, deadline| HandlerSettings {
        warmup,
        deadline,
        max_memory_bytes: 4 << 20,
        ..HandlerSettings::default()
    };
    let long = Duration::from_secs(30);
    let cold = load_handler(&rt, "cold", &tidy_counter(), settings(Warmup::Off, long));
    assert_eq!(cold.handle(get("/")).await.unwrap().status(), 200);
    let warm = load_handler(
        &rt,
        "warm",
        &tidy_counter(),
        settings(warm_with_get(), long),
    );
    let short = Duration::from_secs(2);
    let looping = load_handler(
        &rt,
        "loop",
        &tidy_counter(),
        settings(warm_with_get(), short),
    );
    for _ in 0..10 {
        assert_eq!(warm.handle(get("/")).await.unwrap().status(), 202);
    }
    fail_then_answer(&warm, &looping, 1, 202).await;
    answer_from_many_tasks(&warm, 202).await;
}

/// Requests that trap (POST to `h`), run to their deadline (PUT to `looping`) and run out of
/// memory (DELETE to `h`), `times` each, each followed by a GET that must answer `status`.
async fn fail_then_answer(
    h: &breakwater_isolate::Handler,
    looping: &breakwater_isolate::Handler,
    times: usize,
    status: u16,
) {
    for (h, method, failure) in [
        (h, "POST", "trap"),
        (looping, "PUT", "deadline"),
        (h, "DELETE", "memory"),
    ] {
        for _ in 0..times {
            let failed = h.handle(request(method, "/")).await;
            match (failure, failed) {
                ("trap", Err(IsolateError::Trap { .. }))
                | ("deadline", Err(IsolateError::Deadline { .. }))
                | ("memory", Err(IsolateError::OutOfMemory { .. })) => {}
                (_, other) => panic!(
                    "{method}: expected {failure}, got {:?}",
                    other.map(|r| r.status())
                ),
            }
            assert_eq!(
                h.handle(get("/")).await.unwrap().status(),
                status,
                "after {failure}"
            );
        }
    }
}

/// 8 tasks sending 25 GETs each to `h`, every one answered `status`.
async fn answer_from_many_tasks(h: &breakwater_isolate::Handler, status: u16) {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                assert_eq!(h.handle(get("/")).await.unwrap().status(), status);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// A guest that still holds a host resource after its warm-up request (this one never drops
/// its request) would name it in every later instance, where it does not exist: no snapshot
/// is taken, and its instances start cold. So does a warm-up that fails.
#[tokio::test]
async fn a_handler_whose_warm_up_cannot_be_snapshotted_is_served_cold() {
    let rt = runtime();
    let settings = || HandlerSettings {
        warmup: warm_with_get(),
        ..HandlerSettings::default()
    };
    let holding = load_handler(&rt, "holding", &counting_handler(), settings());
    assert_eq!(holding.handle(get("/")).await.unwrap().status(), 200);
    let failing = handler_component(&handler_module(
        "(call $drop_request (local.get $request))
         (global.set $count (i32.add (global.get $count) (i32.const 1)))
         (call $respond (local.get $out) (i32.add (i32.const 499) (global.get $count)))",
    ));
    let failing = load_handler(&rt, "failing", &failing, settings());
    assert_eq!(failing.handle(get("/")).await.unwrap().status(), 500);
}

#[tokio::test]
async fn a_trap_fails_only_its_request() {
    let rt = runtime();
    let bad = handler_component(&handler_module("(unreachable)"));
    let h = load_handler(&rt, "trap", &bad, HandlerSettings::default());
    match h.handle(get("/")).await {
        Err(IsolateError::Trap { message, .. }) => {
            assert!(message.contains("unreachable"), "{message}")
        }
        other => panic!("expected a trap, got {:?}", other.map(|r| r.status())),
    }
    let good = load_handler(
        &rt,
        "count",
        &counting_handler(),
        HandlerSettings::default(),
    );
    assert_eq!(good.handle(get("/")).await.unwrap().status(), 200);
    assert!(h.handle(get("/")).await.is_err());
}

/// An import no host part provides (here a made-up interface; for real guests Spin's MQTT or
/// SQL) is linked as a function that traps: the component loads, and only the request that
/// calls it fails, naming the import.
#[tokio::test]
async fn an_import_the_host_does_not_provide_traps_only_when_called() {
    let rt = runtime();
    let h = load_handler(
        &rt,
        "absent",
        &handler_with_absent_import(),
        HandlerSettings::default(),
    );
    for _ in 0..2 {
        match h.handle(get("/")).await {
            Err(IsolateError::Trap { message, .. }) => {
                assert!(
                    message.contains("breakwater:test-handler/absent"),
                    "{message}"
                )
            }
            other => panic!("expected a trap, got {:?}", other.map(|r| r.status())),
        }
    }
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_deadline() {
    let rt = runtime();
    let spin = handler_component(&handler_module("(loop $l (br $l))"));
    let settings = HandlerSettings {
        deadline: Duration::from_millis(100),
        ..HandlerSettings::default()
    };
    let h = load_handler(&rt, "spin", &spin, settings);
    assert!(matches!(
        h.handle(get("/")).await,
        Err(IsolateError::Deadline {
            deadline_ms: 100,
            ..
        })
    ));
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_by_the_limit() {
    let rt = runtime();
    let bomb = handler_component(&handler_module(
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
         (call $respond (local.get $out) (i32.const 200))",
    ));
    let settings = HandlerSettings {
        max_memory_bytes: 4 << 20,
        ..HandlerSettings::default()
    };
    let h = load_handler(&rt, "bomb", &bomb, settings);
    assert!(matches!(
        h.handle(get("/")).await,
        Err(IsolateError::OutOfMemory { .. })
    ));
}

#[tokio::test]
async fn returning_without_a_response_is_an_error() {
    let rt = runtime();
    let silent = handler_component(&handler_module("(call $drop_request (local.get $request))"));
    let h = load_handler(&rt, "silent", &silent, HandlerSettings::default());
    assert!(matches!(
        h.handle(get("/")).await,
        Err(IsolateError::InvalidOutput { .. })
    ));
}

#[tokio::test]
async fn the_concurrency_limit_fails_fast() {
    let rt = runtime();
    let settings = HandlerSettings {
        max_concurrency: 1,
        ..HandlerSettings::default()
    };
    let h = load_handler(&rt, "echo", &guest_handler("echo"), settings);
    // The first request stays in flight while its body is open.
    let (tx, req) = fed_post("/");
    let first = h.handle(req).await.unwrap();
    assert!(matches!(
        h.handle(get("/")).await,
        Err(IsolateError::LimitReached { limit: 1, .. })
    ));
    drop(tx);
    first.into_body().collect(1024).await.unwrap();
    // The slot comes back when the first request's task ends.
    let released = tokio::time::timeout(Duration::from_secs(5), async {
        while h.in_use() != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(released.is_ok(), "slot not released");
    assert_eq!(h.handle(get("/")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_filter_component_is_not_a_handler() {
    let rt = runtime();
    let err = rt
        .load_handler_bytes(
            "c",
            std::path::Path::new("c.wasm"),
            &counter(),
            HandlerSettings::default(),
        )
        .err()
        .expect("refused");
    assert!(
        matches!(err, IsolateError::Load { .. } | IsolateError::Link { .. }),
        "{err}"
    );
}

/// Leaves a mark in every place a request can leave state in a core instance, after checking
/// for the marks of the requests before it: its global and memory counts (as `tidy_counter`),
/// a table slot it fills, a table and a memory it grows, a passive data segment it drops
/// (`memory.init` from a dropped segment traps), then answers `198 + counts + marks found`:
/// 200 when it started pristine. By method as `tidy_counter`: POST traps, PUT loops, DELETE
/// runs out of memory, each after leaving its marks.
fn marking_handler() -> Vec<u8> {
    let module = handler_module(&format!(
        "(local $found i32)
         (call $method (local.get $request) (i32.const 700))
         (call $drop_request (local.get $request))
         (if (i32.eqz (ref.is_null (table.get $t (i32.const 1))))
           (then (local.set $found (i32.add (local.get $found) (i32.const 10)))))
         (table.set $t (i32.const 1) (ref.func $mark))
         (if (i32.gt_u (table.size $t) (i32.const 2))
           (then (local.set $found (i32.add (local.get $found) (i32.const 20)))))
         (drop (table.grow $t (ref.null func) (i32.const 1)))
         (if (i32.gt_u (memory.size) (i32.const 1))
           (then (local.set $found (i32.add (local.get $found) (i32.const 40)))))
         (drop (memory.grow (i32.const 1)))
         (memory.init $d (i32.const 600) (i32.const 0) (i32.const 1))
         (data.drop $d)
         {COUNT_THEN_FAIL_BY_METHOD}
         (call $respond (local.get $out)
           (i32.add (local.get $found) (i32.add (i32.const 198)
             (i32.add (global.get $count) (i32.load (i32.const 512))))))",
    ))
    .replace(
        r#"(memory (export "memory") 1)"#,
        r#"(memory (export "memory") 1)
  (table $t 2 100 funcref)
  (func $mark)
  (elem declare func $mark)
  (data $d "x")"#,
    );
    handler_component(&module)
}

/// An instance reset in place after its request serves the next one as a fresh instance
/// would: none of a request's marks (memory, memory size, globals, a table's slots and size,
/// dropped segments) reach the next request, sequentially or from many tasks; and an
/// instance whose request trapped, ran to its deadline or out of memory is never reset and
/// served again (it is dropped).
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_reset_in_place_keeps_nothing_of_its_requests() {
    let rt = runtime();
    // An explicit prewarm keeps a filler, so reset instances are kept between requests.
    let settings = |deadline| HandlerSettings {
        deadline,
        max_memory_bytes: 4 << 20,
        prewarm: Some(2),
        ..HandlerSettings::default()
    };
    let h = load_handler(
        &rt,
        "marks",
        &marking_handler(),
        settings(Duration::from_secs(30)),
    );
    for _ in 0..20 {
        assert_eq!(h.handle(get("/")).await.unwrap().status(), 200);
    }
    let sequential = h.resets();
    assert!(sequential > 0, "no instance was reset in place");
    let looping = load_handler(
        &rt,
        "marks-loop",
        &marking_handler(),
        settings(Duration::from_secs(2)),
    );
    fail_then_answer(&h, &looping, 3, 200).await;
    answer_from_many_tasks(&h, 200).await;
    assert!(h.resets() > sequential + 100, "{} resets", h.resets());
    // The instances kept between requests must not keep their handler (nor so its runtime,
    // engines and pools) alive once it is dropped.
    drop((h, looping));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::sync::Arc::strong_count(&rt) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the runtime is still held after its handlers were dropped"
        );
        // Polling a condition (the guest tasks end just after their answers), bounded.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `reset_in_place: false` gives every request a new instance, as before.
#[tokio::test]
async fn reset_in_place_can_be_turned_off() {
    let rt = runtime();
    let settings = HandlerSettings {
        prewarm: Some(2),
        reset_in_place: false,
        ..HandlerSettings::default()
    };
    let h = load_handler(&rt, "fresh", &marking_handler(), settings);
    for _ in 0..10 {
        assert_eq!(h.handle(get("/")).await.unwrap().status(), 200);
    }
    assert_eq!(h.resets(), 0);
}
