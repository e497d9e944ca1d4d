//! `wasi:http` handler components: served through wasmtime-wasi-http, one fresh instance per
//! request, with deadlines, memory and concurrency limits, and no outgoing HTTP unless granted.

use breakwater_tests::wasm as support;

use breakwater_isolate::{HandlerSettings, IsolateError, RequestBody};
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

#[tokio::test]
async fn echo_handler_streams_the_request_body_back() {
    let rt = runtime();
    let h = load_handler(
        &rt,
        "echo",
        &guest_handler("echo"),
        HandlerSettings::default(),
    );
    let (tx, body) = RequestBody::channel();
    let req = http::Request::builder()
        .method("POST")
        .uri("http://example.com/echo")
        .body(body)
        .unwrap();
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

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_deadline() {
    let rt = runtime();
    let spin = handler_component(&handler_module("(loop $l (br $l))"));
    let settings = HandlerSettings {
        deadline: Duration::from_millis(100),
        ..HandlerSettings::default()
    };
    let h = load_handler(&rt, "spin", &spin, settings);
    let started = std::time::Instant::now();
    assert!(matches!(
        h.handle(get("/")).await,
        Err(IsolateError::Deadline {
            deadline_ms: 100,
            ..
        })
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
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
    let (tx, body) = RequestBody::channel();
    let req = http::Request::builder()
        .method("POST")
        .uri("http://x/")
        .body(body)
        .unwrap();
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
