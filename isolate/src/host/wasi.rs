//! WASI with nothing behind it: no preopened directories, no sockets, no name lookups; clocks,
//! random, stderr and the given environment.

use wasmtime_wasi::WasiCtx;

/// A WASI context that grants no filesystem and no network, with `env` as the environment.
pub(crate) fn context(env: &[(String, String)]) -> WasiCtx {
    WasiCtx::builder()
        .inherit_stderr()
        .envs(env)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}
