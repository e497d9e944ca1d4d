//! Components built from source with the real guest toolchains (isolate/guests/build.sh,
//! which tests/run.sh runs first): a Python `wasi:http` handler and a Python filter
//! (componentize-py), and a JavaScript `wasi:http` handler (componentize-js).

use breakwater_tests::wasm as support;

use support::guest;

use breakwater_isolate::{
    FilterSettings, HandlerSettings, Headers, RequestBody, RequestDecision, Runtime,
    RuntimeSettings, Warmup, WarmupRequest,
};
use bytes::Bytes;
use std::sync::Arc;

/// Compiling a 20 MB guest takes seconds: keep the compiled code between runs.
fn runtime() -> Arc<Runtime> {
    Runtime::new(RuntimeSettings {
        max_instances: 100,
        cache_dir: Some(guest("py-handler.wasm").parent().unwrap().join("cache")),
        ..RuntimeSettings::default()
    })
    .unwrap()
}

fn request(method: &str, path: &str, body: &'static [u8]) -> http::Request<RequestBody> {
    http::Request::builder()
        .method(method)
        .uri(format!("http://example.com{path}"))
        .body(RequestBody::from_bytes(Bytes::from_static(body)))
        .unwrap()
}

async fn text(h: &breakwater_isolate::Handler, req: http::Request<RequestBody>) -> String {
    let resp = h.handle(req).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect(1 << 20).await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_handler_serves_fresh_isolates_with_its_environment() {
    let rt = runtime();
    let settings = HandlerSettings {
        env: [("GREETING".to_string(), "hi".to_string())].into(),
        ..HandlerSettings::default()
    };
    let h = rt
        .load_handler("py", &guest("py-handler.wasm"), settings)
        .unwrap();
    assert_eq!(
        text(&h, request("GET", "/a?b=1", b"")).await,
        "Hello from Python: GET /a?b=1, 0 bytes, count=1, greeting=hi\n"
    );
    assert_eq!(
        text(&h, request("POST", "/p", b"hello")).await,
        "Hello from Python: POST /p, 5 bytes, count=1, greeting=hi\n"
    );
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let t = text(&h, request("GET", "/", b"")).await;
                assert!(t.contains("count=1,"), "state leaked: {t}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Its bindings keep each request's handle until their garbage collector runs: those
    // handles are forgotten with the reset memory that names them.
    assert!(h.resets() > 0, "no instance was reset in place");
}

/// A one-shot HTTP/1.1 origin on loopback; returns its address.
async fn tiny_origin() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn outgoing_http_goes_only_to_allowed_hosts() {
    let origin = tiny_origin().await;
    let rt = runtime();
    let denied = rt
        .load_handler("py", &guest("py-handler.wasm"), HandlerSettings::default())
        .unwrap();
    let path = format!("/outbound?{origin}");
    let t = text(&denied, request("GET", &path, b"")).await;
    assert!(t.contains("HttpRequestDenied"), "{t}");

    let allowed = rt
        .load_handler(
            "py-allowed",
            &guest("py-handler.wasm"),
            HandlerSettings {
                allowed_outbound_hosts: vec![origin.to_string()],
                ..HandlerSettings::default()
            },
        )
        .unwrap();
    assert_eq!(
        text(&allowed, request("GET", &path, b"")).await,
        "outbound status 204\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn javascript_handler_serves_fresh_isolates() {
    let rt = runtime();
    let h = rt
        .load_handler("js", &guest("js-handler.wasm"), HandlerSettings::default())
        .unwrap();
    for _ in 0..5 {
        assert_eq!(
            text(&h, request("POST", "/js", b"0123456789")).await,
            "Hello from JavaScript: POST /js, 10 bytes, count=1\n"
        );
    }
    assert!(h.resets() > 0, "no instance was reset in place");
}

#[test]
fn python_filter_answers_or_edits() {
    let rt = runtime();
    let f = rt
        .load_filter(
            "pyf",
            &guest("py-filter.wasm"),
            FilterSettings {
                config: [("key".to_string(), "secret".to_string())].into(),
                // Not what is tested here: the default (50 ms of wall clock) ran out while
                // the whole suite shared the two cores.
                deadline: std::time::Duration::from_secs(10),
                ..FilterSettings::default()
            },
        )
        .unwrap();
    // An interpreter costs hundreds of microseconds to instantiate: instances are made ahead.
    assert_eq!(f.prewarm(), 4);
    let mut s = f.instance().unwrap();
    match s.on_request(&support::request(&[])).unwrap().unwrap() {
        RequestDecision::Respond(r) => {
            assert_eq!(r.status, 401);
            assert_eq!(r.body, b"missing or wrong x-api-key\n");
        }
        other => panic!("expected 401, got {other:?}"),
    }
    drop(s);
    let headers: &[(&str, &[u8])] = &[("x-api-key", b"secret")];
    let mut s = f.instance().unwrap();
    match s.on_request(&support::request(headers)).unwrap().unwrap() {
        RequestDecision::Continue(fwd) => {
            assert_eq!(fwd.edits.set.len(), 1);
            assert_eq!(fwd.edits.set[0].0, "x-checked-by");
            assert_eq!(fwd.edits.set[0].1, "python");
        }
        other => panic!("expected continue, got {other:?}"),
    }
    let edits = s
        .on_response(&support::request(headers), 200, Headers::List(&[]))
        .unwrap()
        .unwrap();
    assert_eq!(edits.set[0].0, "x-python-filter");
}

#[tokio::test(flavor = "multi_thread")]
async fn c_handler_serves_fresh_isolates() {
    let rt = runtime();
    let h = rt
        .load_handler("c", &guest("c-handler.wasm"), HandlerSettings::default())
        .unwrap();
    for _ in 0..5 {
        assert_eq!(
            text(&h, request("GET", "/c?x=1", b"")).await,
            "Hello from C: GET /c?x=1, count=1\n"
        );
    }
}

/// A component written with the Spin Python SDK (spin-sdk 5, isolate/examples/spin-python),
/// built as `spin build` builds it: it exports `wasi:http/handler@0.3.0` and imports WASI 0.3,
/// its release candidate, and Spin's interfaces. Served unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn spin_sdk_component_is_served_with_variables_and_key_value() {
    let rt = runtime();
    let settings = HandlerSettings {
        env: [("greeting".to_string(), "Hello, Spin variables!".to_string())].into(),
        ..HandlerSettings::default()
    };
    let h = rt
        .load_handler("spin", &guest("spin-hello.wasm"), settings)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        text(&h, request("GET", "/", b"")).await,
        "Hello, Spin variables!\n"
    );

    // spin:key-value: one store per component, shared by its instances.
    let status = |r: Result<http::Response<_>, _>| r.unwrap_or_else(|e| panic!("{e}")).status();
    assert_eq!(
        status(h.handle(request("GET", "/kv/colour", b"")).await),
        404
    );
    assert_eq!(
        status(h.handle(request("PUT", "/kv/colour", b"blue")).await),
        201
    );
    assert_eq!(text(&h, request("GET", "/kv/colour", b"")).await, "blue");
    for n in 1..=3 {
        assert_eq!(
            text(&h, request("GET", "/counter", b"")).await,
            format!("{n}\n")
        );
    }

    // An undefined variable and an exception are the component's own 500s; the next
    // request through the same component is fine.
    assert_eq!(
        status(h.handle(request("GET", "/missing-var", b"")).await),
        500
    );
    assert_eq!(status(h.handle(request("GET", "/boom", b"")).await), 500);
    assert_eq!(
        text(&h, request("GET", "/hello", b"")).await,
        "Hello, Spin variables!\n"
    );

    // spin:redis to an address allowed_outbound_hosts does not list: `open` fails, the SDK
    // raises, and that request alone gets 500.
    assert_eq!(status(h.handle(request("GET", "/redis", b"")).await), 500);
    assert_eq!(
        text(&h, request("GET", "/", b"")).await,
        "Hello, Spin variables!\n"
    );
}

/// A Spin 2 component, written with the Spin Python SDK 3 (isolate/examples/spin-python-v2):
/// WASI 0.2 and `fermyon:spin@2.0.0`, the interfaces of every Spin 2 app. Its variables, its
/// `default` key-value store (the 2.0 interface: blocking calls, `get-keys` as a list) and the
/// errors the SDK raises as `Err(...)` reach it as Spin gives them.
#[tokio::test(flavor = "multi_thread")]
async fn spin_2_sdk_component_is_served_with_variables_and_key_value() {
    let rt = runtime();
    let settings = HandlerSettings {
        env: [("greeting".to_string(), "hi from config".to_string())].into(),
        ..HandlerSettings::default()
    };
    let h = rt
        .load_handler("spin2", &guest("spin2-hello.wasm"), settings)
        .unwrap_or_else(|e| panic!("{e}"));
    async fn reply(
        r: Result<
            http::Response<breakwater_isolate::ResponseBody>,
            breakwater_isolate::IsolateError,
        >,
    ) -> (u16, String) {
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        let status = r.status().as_u16();
        let body = r.into_body().collect(1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }
    let get = |path: &'static str| h.handle(request("GET", path, b""));
    assert_eq!(
        reply(get("/").await).await,
        (200, "Hello from Spin 2 on Breakwater!\n".into())
    );
    assert_eq!(
        reply(get("/var/greeting").await).await,
        (200, "hi from config\n".into())
    );
    assert_eq!(
        reply(get("/var/no_such_variable").await).await,
        (500, "Error_Undefined\n".into())
    );

    assert_eq!(reply(get("/kv/colour").await).await.0, 404);
    assert_eq!(
        reply(h.handle(request("PUT", "/kv/colour", b"blue")).await)
            .await
            .0,
        201
    );
    assert_eq!(
        reply(h.handle(request("PUT", "/kv/size", b"large")).await)
            .await
            .0,
        201
    );
    assert_eq!(reply(get("/kv/colour").await).await, (200, "blue".into()));
    assert_eq!(
        reply(get("/kv-exists/colour").await).await,
        (200, "true\n".into())
    );
    assert_eq!(
        reply(get("/kv-keys").await).await,
        (200, "colour,size\n".into())
    );
    assert_eq!(
        reply(h.handle(request("DELETE", "/kv/colour", b"")).await)
            .await
            .0,
        204
    );
    assert_eq!(
        reply(get("/kv-exists/colour").await).await,
        (200, "false\n".into())
    );
    assert_eq!(reply(get("/kv-keys").await).await, (200, "size\n".into()));
    // Only the `default` store exists; outbound Redis only to allowed addresses (none here).
    assert_eq!(
        reply(get("/kv-store/other").await).await,
        (404, "Error_NoSuchStore\n".into())
    );
    assert_eq!(
        reply(get("/redis").await).await,
        (403, "Error_Other\n".into())
    );
}

/// A Spin component that loops or hoards memory fails only its own request.
#[tokio::test(flavor = "multi_thread")]
async fn spin_sdk_component_is_bounded_by_deadline_and_memory_limit() {
    let rt = runtime();
    let load = |deadline_ms| {
        let settings = HandlerSettings {
            deadline: std::time::Duration::from_millis(deadline_ms),
            max_memory_bytes: 48 << 20,
            ..HandlerSettings::default()
        };
        rt.load_handler("spin-bounded", &guest("spin-hello.wasm"), settings)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // A short deadline for the loop. The hoarder gets a long one, so that only the memory
    // limit can stop it: a Python component runs on the guest threads (its instantiation
    // alone is dear), which yield the CPU to everything else on a busy machine, and a
    // deadline is wall-clock time.
    let (h, roomy) = (load(500), load(30_000));
    match h.handle(request("GET", "/forever", b"")).await {
        Err(breakwater_isolate::IsolateError::Deadline { .. }) => {}
        Err(e) => panic!("expected the deadline, got {e}"),
        Ok(r) => panic!("expected the deadline, got {}", r.status()),
    }
    match roomy.handle(request("GET", "/hog", b"")).await {
        Err(breakwater_isolate::IsolateError::OutOfMemory { .. }) => {}
        // Python may turn the failed allocation into MemoryError, answered 500 by the SDK.
        Ok(r) => assert_eq!(r.status(), 500),
        Err(e) => panic!("expected the memory limit, got {e}"),
    }
    assert_eq!(
        text(&h, request("GET", "/", b"")).await,
        "Hello from Spin on Breakwater!\n"
    );
}

fn warmup(method: http::Method, path: &str) -> Warmup {
    Warmup::Request(WarmupRequest {
        method,
        path: path.into(),
    })
}

/// Warmed with `GET /global`, the Spin component's snapshot holds a Python global of 1: every
/// request, sequential or concurrent, counts from there and sees 2. A warm-up writes to a
/// key-value store of its own, not the component's.
#[tokio::test(flavor = "multi_thread")]
async fn spin_sdk_component_starts_every_request_from_its_warm_snapshot() {
    let rt = runtime();
    let load = |name, warmup| {
        let settings = HandlerSettings {
            warmup,
            ..HandlerSettings::default()
        };
        rt.load_handler(name, &guest("spin-hello.wasm"), settings)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let h = load("spin-warm", warmup(http::Method::GET, "/global"));
    // `GET /` leaves a stream the guest never drops (its garbage collector has not run when
    // the task exits): the instance is reset all the same, the stream disposed of.
    for _ in 0..4 {
        assert!(text(&h, request("GET", "/", b""))
            .await
            .starts_with("Hello"));
    }
    let after_root = h.resets();
    assert!(
        after_root > 0,
        "an instance left with a stream was not reset"
    );
    for _ in 0..5 {
        assert_eq!(text(&h, request("GET", "/global", b"")).await, "2\n");
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                assert_eq!(text(&h, request("GET", "/global", b"")).await, "2\n");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        h.resets() > 0,
        "the instances were not reset in place: the test proves nothing of reset"
    );
    let kv = load(
        "spin-kv-warm",
        warmup(http::Method::PUT, "/kv/from-warm-up"),
    );
    let absent = kv
        .handle(request("GET", "/kv/from-warm-up", b""))
        .await
        .unwrap();
    let status = absent.status();
    let body = absent.into_body().collect(1 << 20).await.unwrap();
    assert_eq!(
        (status, &body[..]),
        (http::StatusCode::NOT_FOUND, &b"no such key\n"[..]),
        "the warm-up's write is not in the store"
    );
    assert_eq!(text(&kv, request("GET", "/global", b"")).await, "1\n");
}
