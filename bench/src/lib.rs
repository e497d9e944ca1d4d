//! Benchmarks live in benches/; the load generator in src/bin/. This library holds what both
//! the load generator and the comparison scripts' reports share: the latency plot.

pub mod plot;
