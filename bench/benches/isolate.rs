//! Per-request cost of a filter: take an instance, call `on-request`, give it back.
//! Compares the pooling allocator (fresh instance per request, slot reset to the
//! copy-on-write image), the on-demand allocator, and the unsafe floor of reusing one
//! instance without any reset. Run: `cargo bench -p breakwater-bench --bench isolate`.

#[path = "../../isolate/tests/support/mod.rs"]
mod support;

use breakwater_isolate::{Allocator, FilterSettings, Runtime, RuntimeSettings};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use support::*;

fn trivial() -> Vec<u8> {
    component("request-filter", &module(&on_request(CONTINUE)))
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

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter-request");
    let owned = headers_12();
    let headers: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
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
                    let mut s = f.session().unwrap();
                    s.on_request(&request(hs)).unwrap().unwrap()
                })
            });
        }
    }
    let rt = Runtime::new(RuntimeSettings::default()).unwrap();
    let f = load(&rt, "trivial", &trivial(), FilterSettings::default());
    let mut reused = f.session().unwrap();
    group.bench_function(BenchmarkId::new("reused-unsafe-floor", "12-headers"), |b| {
        b.iter(|| reused.on_request(&request(&headers)).unwrap().unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
