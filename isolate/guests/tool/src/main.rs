//! `guest-tool`: the two steps of building a C guest component that otherwise need
//! `wit-bindgen-cli` and `wasm-tools` installed (about 13 minutes of `cargo install` here):
//!
//! ```text
//! guest-tool c-bindings WIT_DIR WORLD OUT_DIR      # wit-bindgen's C generator
//! guest-tool component CORE.wasm OUT.wasm ADAPTER  # wasm-tools component new --adapt ...
//! ```
//!
//! `ADAPTER` is `reactor` (custom worlds such as Breakwater filters) or `proxy` (`wasi:http`
//! handlers): the WASI preview1 adapters of wasmtime 48.0.8, the version Breakwater runs.

use std::path::Path;

use anyhow::{bail, Context, Result};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_PROXY_ADAPTER, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::Files;
use wit_component::ComponentEncoder;
use wit_parser::Resolve;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["c-bindings", wit, world, out] => c_bindings(Path::new(wit), world, Path::new(out)),
        ["component", core, out, adapter] => component(Path::new(core), Path::new(out), adapter),
        _ => bail!(
            "usage: guest-tool c-bindings WIT_DIR WORLD OUT_DIR\n       \
             guest-tool component CORE.wasm OUT.wasm reactor|proxy"
        ),
    }
}

/// Writes `WORLD.h`, `WORLD.c` and `WORLD_component_type.o` for `WORLD` into `out`.
fn c_bindings(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .with_context(|| format!("reading WIT from {}", wit.display()))?;
    let world = resolve
        .select_world(&[package], Some(world))
        .with_context(|| format!("world {world} in {}", wit.display()))?;
    let mut files = Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out)?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Turns a core module with an embedded component type into a component, adapting its
/// `wasi_snapshot_preview1` imports to WASI 0.2.
fn component(core: &Path, out: &Path, adapter: &str) -> Result<()> {
    let adapter = match adapter {
        "reactor" => WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        "proxy" => WASI_SNAPSHOT_PREVIEW1_PROXY_ADAPTER,
        other => bail!("unknown adapter {other:?}: reactor or proxy"),
    };
    let module = std::fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    let component = ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .adapter("wasi_snapshot_preview1", adapter)?
        .encode()
        .with_context(|| format!("encoding {}", core.display()))?;
    std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}
