//! The isolate's integration tests, one module per topic: filters and handlers built from WAT,
//! C, Python and JavaScript, run through the public API. One test binary, so wasmtime is
//! linked once; the component builders live in `breakwater_tests::wasm`.

mod c_filters;
mod filters;
mod guests;
mod handlers;
mod heads;
