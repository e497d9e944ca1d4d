//! Per-request cost of a filter: take an instance, call `on-request`, give it back.
//! Compares the pooling allocator (fresh instance per request, slot reset to the
//! copy-on-write image), the on-demand allocator, and the unsafe floor of reusing one
//! instance without any reset. Run: `cargo bench -p breakwater-bench --bench isolate`.

use breakwater_tests::wasm as support;

use breakwater_isolate::{Allocator, FilterSettings, Runtime, RuntimeSettings};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use support::*;

fn trivial() -> Vec<u8> {
    component("request-filter", &module(&on_request(CONTINUE)))
}

/// The same filter against interface 0.2: it reads nothing of the request, so nothing of it is
/// lowered; it drops its borrowed handle and continues.
fn trivial_v2() -> Vec<u8> {
    let handle = format!(
        r#"(func (export "breakwater:filter/on-request@0.2.0#handle") (param $req i32) (result i32)
             (call $drop_req (local.get $req)) {CONTINUE})"#
    );
    component_v2("request-filter", &module_v2(&handle))
}

/// Reads nothing, sets one header: the realistic small filter.
fn headers_12() -> Vec<(String, Vec<u8>)> {
    (0..12)
        .map(|i| {
            (
                format!("x-header-{i}"),
                format!("value-number-{i}").into_bytes(),
            )
        })
        .collect()
}

/// `(name, value)` views of owned headers, as the isolate API takes them.
fn header_refs(owned: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter-request");
    let owned = headers_12();
    let headers: Vec<(&str, &[u8])> = header_refs(&owned);
    for (label, allocator) in [
        ("pooling", Allocator::Pooling),
        ("on-demand", Allocator::OnDemand),
    ] {
        let rt = Runtime::new(RuntimeSettings {
            allocator,
            max_instances: 100,
            ..RuntimeSettings::default()
        })
        .unwrap();
        let f = load(&rt, "trivial", &trivial(), FilterSettings::default());
        for (hname, hs) in [("0-headers", &[][..]), ("12-headers", &headers[..])] {
            group.bench_function(BenchmarkId::new(label, hname), |b| {
                b.iter(|| {
                    let mut s = f.instance().unwrap();
                    s.on_request(&request(hs)).unwrap().unwrap()
                })
            });
        }
    }
    let rt = Runtime::new(RuntimeSettings::default()).unwrap();
    let v2 = load(&rt, "trivial-0.2", &trivial_v2(), FilterSettings::default());
    for (hname, hs) in [("0-headers", &[][..]), ("12-headers", &headers[..])] {
        group.bench_function(BenchmarkId::new("pooling-0.2", hname), |b| {
            b.iter(|| {
                let mut s = v2.instance().unwrap();
                s.on_request(&request(hs)).unwrap().unwrap()
            })
        });
    }
    let f = load(&rt, "trivial", &trivial(), FilterSettings::default());
    let mut reused = f.instance().unwrap();
    group.bench_function(BenchmarkId::new("reused-unsafe-floor", "12-headers"), |b| {
        b.iter(|| reused.on_request(&request(&headers)).unwrap().unwrap())
    });
    let mut reused = v2.instance().unwrap();
    group.bench_function(
        BenchmarkId::new("reused-unsafe-floor-0.2", "12-headers"),
        |b| b.iter(|| reused.on_request(&request(&headers)).unwrap().unwrap()),
    );
    group.finish();
}

/// Guests built by isolate/guests/build.sh (tests/run.sh runs it), if present.
fn guest(name: &str) -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("BREAKWATER_GUESTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/guests")
        });
    let path = dir.join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "{} not built (isolate/guests/build.sh): skipped",
            path.display()
        );
        None
    }
}

/// Per-request cost of a `wasi:http` handler: fresh instance, `handle`, the whole body.
fn bench_handlers(c: &mut Criterion) {
    use breakwater_isolate::{HandlerSettings, RequestBody};
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt = Runtime::new(RuntimeSettings {
        max_instances: 100,
        cache_dir: guest("py-handler.wasm").map(|p| p.parent().unwrap().join("cache")),
        ..RuntimeSettings::default()
    })
    .unwrap();
    let mut handlers = vec![(
        "wat-hello",
        rt.load_handler_bytes(
            "hello",
            std::path::Path::new("hello.wasm"),
            &guest_handler("hello"),
            HandlerSettings::default(),
        )
        .unwrap(),
    )];
    for (label, file) in [
        ("c-hello", "c-handler.wasm"),
        ("python-hello", "py-handler.wasm"),
        ("js-hello", "js-handler.wasm"),
    ] {
        if let Some(path) = guest(file) {
            handlers.push((
                label,
                rt.load_handler(label, &path, HandlerSettings::default())
                    .unwrap(),
            ));
        }
    }
    let mut group = c.benchmark_group("handler-request");
    for (label, h) in &handlers {
        group.bench_function(*label, |b| {
            b.iter(|| {
                tokio.block_on(async {
                    let req = http::Request::get("http://example.com/")
                        .body(RequestBody::empty())
                        .unwrap();
                    let resp = h.handle(req).await.unwrap();
                    resp.into_body().collect(1 << 20).await.unwrap()
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("python-filter");
    if let Some(path) = guest("py-filter.wasm") {
        let f = rt
            .load_filter(
                "pyf",
                &path,
                FilterSettings {
                    config: [("key".to_string(), "k".to_string())].into(),
                    ..FilterSettings::default()
                },
            )
            .unwrap();
        let owned = headers_12();
        let mut headers: Vec<(&str, &[u8])> = header_refs(&owned);
        headers.push(("x-api-key", b"k"));
        group.bench_function("12-headers", |b| {
            b.iter(|| {
                let mut s = f.instance().unwrap();
                s.on_request(&request(&headers)).unwrap().unwrap()
            })
        });
    }
    group.finish();

    // C filters (isolate/examples, clang + wasi-libc): header-rewrite with a realistic config
    // on 12 headers, pooled fresh instances vs the unsafe floor of one reused instance.
    let mut group = c.benchmark_group("c-filter");
    if let Some(path) = guest("c-header-rewrite.wasm") {
        let f = rt
            .load_filter(
                "c-header-rewrite",
                &path,
                FilterSettings {
                    config: [
                        ("request-set", "x-edge=breakwater; x-region=eu"),
                        ("request-remove", "cookie"),
                    ]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                    ..FilterSettings::default()
                },
            )
            .unwrap();
        let owned = headers_12();
        let headers: Vec<(&str, &[u8])> = header_refs(&owned);
        group.bench_function(BenchmarkId::new("pooling", "12-headers"), |b| {
            b.iter(|| {
                let mut s = f.instance().unwrap();
                s.on_request(&request(&headers)).unwrap().unwrap()
            })
        });
        let mut reused = f.instance().unwrap();
        group.bench_function(BenchmarkId::new("reused-unsafe-floor", "12-headers"), |b| {
            b.iter(|| reused.on_request(&request(&headers)).unwrap().unwrap())
        });
    }
    group.finish();
}

fn instantiation(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    filter: &breakwater_isolate::Filter,
) {
    group.bench_function(BenchmarkId::new("new", name), |b| {
        b.iter_custom(|iters| {
            let mut timed = std::time::Duration::ZERO;
            for _ in 0..iters {
                let started = std::time::Instant::now();
                let instance = filter.instance().unwrap();
                timed += started.elapsed();
                drop(instance);
            }
            timed
        })
    });
    group.bench_function(BenchmarkId::new("new+drop", name), |b| {
        b.iter(|| drop(filter.instance().unwrap()))
    });
}

/// Instantiation (no instance ready: `prewarm: 0`), which bounds instances per second per
/// core: `new` times taking a fresh instance alone (its drop, which frees and resets the pool
/// slot, is outside the timed region), `new+drop` both. And the resident memory an idle pool
/// slot keeps after use.
fn bench_instances(c: &mut Criterion) {
    let rt = Runtime::new(RuntimeSettings {
        max_instances: 600,
        ..RuntimeSettings::default()
    })
    .unwrap();
    let cold = FilterSettings {
        prewarm: Some(0),
        max_concurrency: 600,
        ..FilterSettings::default()
    };
    let mut group = c.benchmark_group("instantiate");
    let trivial = load(&rt, "trivial-cold", &trivial(), cold.clone());
    instantiation(&mut group, "trivial-wat", &trivial);
    if let Some(path) = guest("c-header-rewrite.wasm") {
        let f = rt.load_filter("c-cold", &path, cold.clone()).unwrap();
        instantiation(&mut group, "c-header-rewrite", &f);

        // 500 slots used at once, then all idle: what they keep resident.
        let before = rss_kib();
        let instances: Vec<_> = (0..500).map(|_| f.instance().unwrap()).collect();
        let live = rss_kib();
        drop(instances);
        let idle = rss_kib();
        eprintln!(
            "memory: {:.1} KiB per live C-filter instance, {:.1} KiB per idle slot after use",
            (live - before) as f64 / 500.0,
            (idle - before) as f64 / 500.0
        );
    }
    group.finish();
}

/// Resident set size of this process, from /proc/self/statm.
fn rss_kib() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

/// Median and p99 per request (criterion reports means): each case timed call by call into
/// an HDR histogram, printed as one table. Same cases as above.
fn bench_percentiles(_c: &mut Criterion) {
    use breakwater_isolate::{HandlerSettings, RequestBody};
    let mut rows: Vec<(String, u64, u64)> = Vec::new();
    let mut time = |name: &str, n: usize, f: &mut dyn FnMut()| {
        for _ in 0..n / 10 {
            f();
        }
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for _ in 0..n {
            let t = std::time::Instant::now();
            f();
            h.record(t.elapsed().as_nanos() as u64).unwrap();
        }
        rows.push((
            name.to_string(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
        ));
    };
    let owned = headers_12();
    let headers: Vec<(&str, &[u8])> = header_refs(&owned);
    for (label, allocator) in [
        ("pooling", Allocator::Pooling),
        ("on-demand", Allocator::OnDemand),
    ] {
        let rt = Runtime::new(RuntimeSettings {
            allocator,
            max_instances: 100,
            ..RuntimeSettings::default()
        })
        .unwrap();
        let f = load(&rt, "trivial", &trivial(), FilterSettings::default());
        time(
            &format!("trivial WAT filter, 12 headers, {label}"),
            20_000,
            &mut || {
                f.instance()
                    .unwrap()
                    .on_request(&request(&headers))
                    .unwrap()
                    .unwrap();
            },
        );
        if let Some(path) = guest("c-header-rewrite.wasm") {
            let c = rt
                .load_filter("c", &path, FilterSettings::default())
                .unwrap();
            time(
                &format!("C filter, 12 headers, {label}"),
                20_000,
                &mut || {
                    c.instance()
                        .unwrap()
                        .on_request(&request(&headers))
                        .unwrap()
                        .unwrap();
                },
            );
            if label == "pooling" {
                let mut reused = c.instance().unwrap();
                time(
                    "C filter, 12 headers, reused (unsafe floor)",
                    20_000,
                    &mut || {
                        reused.on_request(&request(&headers)).unwrap().unwrap();
                    },
                );
            }
        }
        if label == "pooling" {
            let mut reused = f.instance().unwrap();
            time(
                "trivial WAT filter, 12 headers, reused (unsafe floor)",
                20_000,
                &mut || {
                    reused.on_request(&request(&headers)).unwrap().unwrap();
                },
            );
        }
    }
    let rt = Runtime::new(RuntimeSettings {
        max_instances: 100,
        cache_dir: guest("py-handler.wasm").map(|p| p.parent().unwrap().join("cache")),
        ..RuntimeSettings::default()
    })
    .unwrap();
    if let Some(path) = guest("py-filter.wasm") {
        let settings = FilterSettings {
            config: [("key".to_string(), "k".to_string())].into(),
            // Timing, not deadlines, is measured: a call preempted on a busy machine must
            // not end the run (the default 50 ms once did).
            deadline: std::time::Duration::from_secs(5),
            ..FilterSettings::default()
        };
        let f = rt.load_filter("pyf", &path, settings).unwrap();
        time("Python filter, 12 headers", 300, &mut || {
            f.instance()
                .unwrap()
                .on_request(&request(&headers))
                .unwrap()
                .unwrap();
        });
    }
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (label, file) in [
        ("C wasi:http hello handler", "c-handler.wasm"),
        ("JavaScript wasi:http hello handler", "js-handler.wasm"),
        ("Python wasi:http hello handler", "py-handler.wasm"),
    ] {
        let Some(path) = guest(file) else { continue };
        let h = rt
            .load_handler(label, &path, HandlerSettings::default())
            .unwrap();
        let n = if file.starts_with('c') { 20_000 } else { 300 };
        time(label, n, &mut || {
            tokio.block_on(async {
                let req = http::Request::get("http://example.com/")
                    .body(RequestBody::empty())
                    .unwrap();
                let resp = h.handle(req).await.unwrap();
                resp.into_body().collect(1 << 20).await.unwrap();
            })
        });
    }
    eprintln!("\n| case | median | p99 |\n|---|---|---|");
    for (name, p50, p99) in rows {
        eprintln!(
            "| {name} | {:.1} µs | {:.1} µs |",
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0
        );
    }
}

criterion_group!(
    benches,
    bench,
    bench_handlers,
    bench_instances,
    bench_percentiles
);
criterion_main!(benches);
