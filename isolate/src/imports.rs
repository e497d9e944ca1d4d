//! What a handler component imports, matched against what the host provides.
//!
//! Two things real guests need that wasmtime's linker does not do by itself:
//!
//! * **Release candidates of WASI 0.3.** Toolchains (the Spin SDK 5 among them) import
//!   `wasi:*@0.3.0-rc-2026-03-15` next to `wasi:*@0.3.0`. wasmtime's linker never treats a
//!   pre-release version as compatible with anything, so those imports would not link. As
//!   Spin does, they are served by the 0.3 host: the component's own top-level import and
//!   export names get `+rc-…` (semver build metadata, which the linker does match against
//!   the release) instead of `-rc-…`. Same length, so the rewrite is done in place.
//!   Only `wasi:` packages are renamed; if a candidate's types do not match the release,
//!   the import is stubbed like any other missing one.
//! * **Imports the host does not provide** (Spin's MQTT, Redis, SQL, LLM interfaces, …)
//!   become functions that trap when called, so that a component loads and serves every
//!   request that does not use them. Only what is really missing is stubbed: an import the
//!   host satisfies under a compatible version is never shadowed.

use wasmparser::{Parser, Payload};
use wasmtime::component::{types::ComponentItem, Component, InstancePre, Linker, ResourceType};

/// The names of a component's own (top-level) imports and exports, borrowed from its bytes;
/// `None` when it does not parse (compiling will say why).
pub(crate) fn top_level_names(bytes: &[u8]) -> Option<Vec<&str>> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    names.push(import.ok()?.name.name);
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    names.push(export.ok()?.name.name);
                }
            }
            _ => {}
        }
    }
    Some(names)
}

/// `bytes` with the `-rc-…` versions of its top-level `wasi:` imports and exports (`names`,
/// from [`top_level_names`] of the same bytes) turned into `+rc-…`, or `None` when it has
/// none.
pub(crate) fn map_wasi_release_candidates(bytes: &[u8], names: &[&str]) -> Option<Vec<u8>> {
    let base = bytes.as_ptr() as usize;
    let patches: Vec<usize> = names
        .iter()
        .filter_map(|name| Some(name.as_ptr() as usize - base + rc_dash(name)?))
        .collect();
    if patches.is_empty() {
        return None;
    }
    let mut out = bytes.to_vec();
    for at in patches {
        out[at] = b'+';
    }
    Some(out)
}

/// Whether one of `names` is the export `wasi:http/incoming-handler@0.2.x` (a WASI 0.2
/// handler, which runs without the component model's concurrency support).
pub(crate) fn exports_wasi_http_0_2(names: &[&str]) -> bool {
    names
        .iter()
        .any(|n| n.starts_with("wasi:http/incoming-handler@0.2."))
}

/// Where the `-` of a `wasi:…@X.Y.Z-rc-…` name is.
fn rc_dash(name: &str) -> Option<usize> {
    if !name.starts_with("wasi:") {
        return None;
    }
    let at = name.find('@')?;
    let dash = at + name[at..].find("-rc-")?;
    let core = &name[at + 1..dash];
    let numeric = core.split('.').count() == 3
        && core
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    numeric.then_some(dash)
}

/// Pre-link `component`, stubbing each top-level import `linker` cannot satisfy with
/// functions that trap when called. Returns the pre-linked component and the names of the
/// stubbed imports.
pub(crate) fn instantiate_pre_with_stubs<T: Send + 'static>(
    linker: &Linker<T>,
    component: &Component,
) -> wasmtime::Result<(InstancePre<T>, Vec<String>)> {
    // Most components need no stub: no copy of the (shared) linker for them.
    let first = match linker.instantiate_pre(component) {
        Ok(pre) => return Ok((pre, Vec::new())),
        Err(e) => e,
    };
    unmatched_import(&first.to_string()).ok_or(first)?;
    let mut linker = linker.clone();
    let mut stubbed = Vec::new();
    loop {
        let err = match linker.instantiate_pre(component) {
            Ok(pre) => return Ok((pre, stubbed)),
            Err(e) => e,
        };
        // wasmtime names the first import it could not match (missing, or of another type).
        let message = err.to_string();
        let Some(name) = unmatched_import(&message).map(str::to_string) else {
            return Err(err);
        };
        if stubbed.contains(&name) {
            return Err(err);
        }
        stub_instance(&mut linker, component, &name).map_err(|_| err)?;
        stubbed.push(name);
    }
}

/// The import named by wasmtime's "component imports instance `NAME`, but a matching
/// implementation was not found in the linker".
fn unmatched_import(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("component imports instance `")?;
    let (name, tail) = rest.split_once('`')?;
    tail.contains("matching implementation was not found")
        .then_some(name)
}

/// A host resource type for stubbed resources: never constructed.
struct Stubbed;

/// Define the import instance `name` of `component` with functions that trap.
fn stub_instance<T: Send + 'static>(
    linker: &mut Linker<T>,
    component: &Component,
    name: &str,
) -> wasmtime::Result<()> {
    let engine = linker.engine().clone();
    let ty = component.component_type();
    let Some(ComponentItem::ComponentInstance(instance)) = ty
        .imports(&engine)
        .find(|(n, _)| *n == name)
        .map(|(_, item)| item.ty)
    else {
        wasmtime::bail!("`{name}` is not an imported instance");
    };
    // Shadowing is refused, so this never replaces what the host defines.
    let mut inst = linker.instance(name)?;
    for (export, item) in instance.exports(&engine) {
        let what = format!("{name}#{export}");
        match item.ty {
            ComponentItem::ComponentFunc(f) if f.async_() => {
                inst.func_new_concurrent(export, move |_, _, _, _| {
                    let what = what.clone();
                    Box::pin(async move { Err(not_provided(&what)) })
                })?;
            }
            ComponentItem::ComponentFunc(_) => {
                inst.func_new(export, move |_, _, _, _| Err(not_provided(&what)))?;
            }
            ComponentItem::Resource(_) => {
                inst.resource(export, ResourceType::host::<Stubbed>(), |_, _| Ok(()))?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn not_provided(what: &str) -> wasmtime::Error {
    wasmtime::format_err!("`{what}` is not provided by this host (the import is a stub that traps)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_candidates_of_wasi_only() {
        assert_eq!(rc_dash("wasi:http/types@0.3.0-rc-2026-03-15"), Some(21));
        assert_eq!(rc_dash("wasi:http/types@0.3.0"), None);
        assert_eq!(rc_dash("wasi:config/store@0.2.0-draft-2024-09-27"), None);
        assert_eq!(rc_dash("spin:kv/kv@1.0.0-rc-1"), None);
        assert_eq!(rc_dash("wasi:x/y@0.3-rc-1"), None);
    }

    #[test]
    fn unmatched_import_is_read_from_wasmtime_message() {
        let m = "component imports instance `spin:mqtt/mqtt@3.0.0`, but a matching \
                 implementation was not found in the linker";
        assert_eq!(unmatched_import(m), Some("spin:mqtt/mqtt@3.0.0"));
        assert_eq!(unmatched_import("something else"), None);
    }

    #[test]
    fn names_are_rewritten_in_place_at_the_top_level_only() {
        let wat = r#"(component
            (import "wasi:cli/stdout@0.3.0-rc-2026-03-15" (instance))
            (import "wasi:cli/stdout@0.3.0" (instance))
            (component (import "wasi:cli/stderr@0.3.0-rc-2026-03-15" (instance)))
        )"#;
        let bytes = wat::parse_str(wat).unwrap();
        let names = top_level_names(&bytes).unwrap();
        let out = map_wasi_release_candidates(&bytes, &names).expect("rewritten");
        assert_eq!(out.len(), bytes.len());
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("wasi:cli/stdout@0.3.0+rc-2026-03-15"));
        assert!(
            text.contains("wasi:cli/stderr@0.3.0-rc-2026-03-15"),
            "nested untouched"
        );
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&out)
            .expect("still valid");
        assert!(map_wasi_release_candidates(&out, &top_level_names(&out).unwrap()).is_none());
    }
}
