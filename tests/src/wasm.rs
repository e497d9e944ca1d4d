//! Test components: core modules in WAT, made into components against `wit/filter.wit` with
//! wit-component, as `wasm-tools component new` does. Layouts follow the canonical ABI.

use breakwater_isolate::{FilterSettings, Runtime, RuntimeSettings};
use std::path::Path;
use std::sync::Arc;

/// Build a component for `world` (`filter`, `request-filter`, `response-filter`).
pub fn component(world: &str, core_wat: &str) -> Vec<u8> {
    component_of("", world, core_wat)
}

/// Build a component for `world` of the filter interface 0.2 (`isolate/wit/0.2`).
pub fn component_v2(world: &str, core_wat: &str) -> Vec<u8> {
    component_of("0.2", world, core_wat)
}

/// Build a component for `world` of the WIT package in `isolate/wit/{dir}`.
fn component_of(dir: &str, world: &str, core_wat: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve
        // Every crate of the workspace sits at the top level: this finds isolate/wit from any.
        .push_dir(wit_root().join(dir))
        .unwrap();
    encode(core_wat, &resolve, pkg, world)
}

/// `isolate/wit`.
fn wit_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../isolate/wit")
}

/// Build a component for `world` of the package `wit` (WIT text), which may use both
/// versions of the filter interface.
pub fn component_with(wit: &str, world: &str, core_wat: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let root = wit_root();
    resolve.push_dir(root.join("0.2")).unwrap();
    resolve.push_dir(&root).unwrap();
    let pkg = resolve.push_str("world.wit", wit).unwrap();
    encode(core_wat, &resolve, pkg, world)
}

/// A module of interface 0.2: memory, a bump allocator for the host's copies, some of the
/// heads' methods (`$path`, `$header`, `$headers`, `$status`, `$resp_header`, each with the
/// canonical ABI's flat signature: the handle, a name's pointer and length, a return area),
/// the drops of the borrowed handles (`$drop_req`, `$drop_resp`: the component model traps a
/// call that returns with a borrowed handle not dropped; bindings generators emit the drops)
/// and `extra`.
pub fn module_v2(extra: &str) -> String {
    const TYPES: &str = "breakwater:filter/types@0.2.0";
    format!(
        r#"(module
  (import "{TYPES}" "[method]request.path" (func $path (param i32 i32)))
  (import "{TYPES}" "[method]request.header" (func $header (param i32 i32 i32 i32)))
  (import "{TYPES}" "[method]request.headers" (func $headers (param i32 i32)))
  (import "{TYPES}" "[method]response-head.status" (func $status (param i32) (result i32)))
  (import "{TYPES}" "[method]response-head.header" (func $resp_header (param i32 i32 i32 i32)))
  (import "{TYPES}" "[resource-drop]request" (func $drop_req (param i32)))
  (import "{TYPES}" "[resource-drop]response-head" (func $drop_resp (param i32)))
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 65536))
  {BUMP_ALLOCATOR}
  {extra}
)"#
    )
}

/// A 0.2 filter that reads what it needs through the heads' methods. `on-request`: with a
/// header `X-Probe` (asked for in that case), answers 200 with its value as the body;
/// without, answers `400 + the number of request headers`. `on-response`: sets
/// `x-origin-server` to the response's `server` and `x-path` to the request's path, when the
/// status is 200.
pub fn prober() -> Vec<u8> {
    let extra = r#"
  (func (export "breakwater:filter/on-request@0.2.0#handle") (param $req i32) (result i32)
    (call $header (local.get $req) (i32.const 3100) (i32.const 7) (i32.const 3000))
    (memory.fill (i32.const 2048) (i32.const 0) (i32.const 32))
    (i32.store8 (i32.const 2048) (i32.const 1))
    (if (i32.load8_u (i32.const 3000))
      (then
        (i32.store16 (i32.const 2052) (i32.const 200))
        (i32.store (i32.const 2064) (i32.load (i32.const 3004)))
        (i32.store (i32.const 2068) (i32.load (i32.const 3008))))
      (else
        (call $headers (local.get $req) (i32.const 3040))
        (i32.store16 (i32.const 2052) (i32.add (i32.const 400) (i32.load (i32.const 3044))))))
    (call $drop_req (local.get $req))
    (i32.const 2048))
  (func (export "breakwater:filter/on-response@0.2.0#handle") (param $req i32) (param $resp i32) (result i32)
    (memory.fill (i32.const 4000) (i32.const 0) (i32.const 24))
    (if (i32.eq (call $status (local.get $resp)) (i32.const 200))
      (then
        (memory.fill (i32.const 3000) (i32.const 0) (i32.const 12))
        (call $resp_header (local.get $resp) (i32.const 3200) (i32.const 6) (i32.const 3000))
        (call $path (local.get $req) (i32.const 3020))
        (i32.store (i32.const 4000) (i32.const 4100)) (i32.store (i32.const 4004) (i32.const 2))
        (i32.store (i32.const 4100) (i32.const 3300)) (i32.store (i32.const 4104) (i32.const 15))
        (i32.store (i32.const 4108) (i32.load (i32.const 3004)))
        (i32.store (i32.const 4112) (i32.load (i32.const 3008)))
        (i32.store (i32.const 4116) (i32.const 3400)) (i32.store (i32.const 4120) (i32.const 6))
        (i32.store (i32.const 4124) (i32.load (i32.const 3020)))
        (i32.store (i32.const 4128) (i32.load (i32.const 3024)))))
    (call $drop_req (local.get $req))
    (call $drop_resp (local.get $resp))
    (i32.const 4000))
  (data (i32.const 3100) "X-Probe") (data (i32.const 3200) "server")
  (data (i32.const 3300) "x-origin-server") (data (i32.const 3400) "x-path")"#;
    component_v2("filter", &module_v2(extra))
}

/// Embed `world`'s metadata in the core module and make it a component, as
/// `wasm-tools component new` does.
fn encode(
    core_wat: &str,
    resolve: &wit_parser::Resolve,
    pkg: wit_parser::PackageId,
    world: &str,
) -> Vec<u8> {
    let mut module = wat::parse_str(core_wat).unwrap_or_else(|e| panic!("{e}\n{core_wat}"));
    let world = resolve.select_world(&[pkg], Some(world)).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}

/// The guests' `cabi_realloc`: a bump allocator from the global `$heap`, growing the memory
/// when it runs past its end.
const BUMP_ALLOCATOR: &str = r#"(func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (block $ok
      (br_if $ok (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
      (drop (memory.grow (i32.add (i32.const 1)
        (i32.shr_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16))))))
    (local.get $p))"#;

/// Memory, a bump allocator for the host's copies, and `extra` definitions.
pub fn module(extra: &str) -> String {
    format!(
        r#"(module
  (import "breakwater:filter/config@0.1.0" "get" (func $config_get (param i32 i32 i32)))
  (import "breakwater:filter/log@0.1.0" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 65536))
  (global $count (mut i32) (i32.const 0))
  {BUMP_ALLOCATOR}
  {extra}
)"#
    )
}

/// The flat parameters of `on-request.handle`: a request record is 16 i32s.
pub const REQ_PARAMS: &str =
    "(param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)";

/// `on-request` whose body is `body` (must leave a result pointer on the stack).
pub fn on_request(body: &str) -> String {
    // The guest's bump heap is reset when the call ends (what a real guest's post-return
    // does): the result area is static, so nothing it points into is reused before lifting.
    format!(
        r#"(func $on_request (export "breakwater:filter/on-request@0.1.0#handle") {REQ_PARAMS} (result i32)
             (local $r i32)
             (local.set $r (block (result i32) {body}))
             (global.set $heap (i32.const 65536))
             (local.get $r))"#
    )
}

/// `on-response` (params passed by pointer: 19 flat values is over the limit of 16).
pub fn on_response(body: &str) -> String {
    format!(
        r#"(func $on_response (export "breakwater:filter/on-response@0.1.0#handle") (param i32) (result i32) {body})"#
    )
}

/// A `body-filter` component: `on-request` and `on-response` change nothing;
/// `on-request-body` runs `req_body` and `on-response-body` runs `resp_body`, each with
/// `$args` (the parameter area) in scope and leaving a result pointer. `$upper` (ptr, len)
/// upper-cases ASCII in place; see `replace_body`.
pub fn body_filter(req_body: &str, resp_body: &str) -> Vec<u8> {
    let extra = format!(
        r#"{on_request}
  {on_response}
  (func (export "breakwater:filter/on-request-body@0.1.0#handle") (param $args i32) (result i32) {req_body})
  (func (export "breakwater:filter/on-response-body@0.1.0#handle") (param $args i32) (result i32) {resp_body})
  (func $upper (param $p i32) (param $n i32)
    (local $i i32) (local $c i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $i))))
      (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
        (then (i32.store8 (i32.add (local.get $p) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))))"#,
        on_request = on_request(CONTINUE),
        on_response = on_response(
            "(memory.fill (i32.const 4000) (i32.const 0) (i32.const 24)) (i32.const 4000)"
        ),
    );
    component("body-filter", &module(&extra))
}

/// Body-phase code: upper-case the body in place and answer `replace` with it. `offset`: where
/// the body's (ptr, len) sits in the parameter area (64 for requests, 76 for responses).
pub fn upper_body(offset: u32) -> String {
    format!(
        "(call $upper (i32.load (i32.add (local.get $args) (i32.const {offset})))
                      (i32.load (i32.add (local.get $args) (i32.const {len}))))
         (i32.store8 (i32.const 5000) (i32.const 1))
         (i32.store (i32.const 5004) (i32.load (i32.add (local.get $args) (i32.const {offset}))))
         (i32.store (i32.const 5008) (i32.load (i32.add (local.get $args) (i32.const {len}))))
         (i32.const 5000)",
        len = offset + 4
    )
}

/// Body-phase code: keep the body as it is.
pub const KEEP_BODY: &str = "(i32.store8 (i32.const 5000) (i32.const 0)) (i32.const 5000)";

/// Respond with `status` and the bytes at `body_ptr..+body_len`; result area at 2048.
pub fn respond(status: &str, body_ptr: u32, body_len: &str) -> String {
    format!(
        "(i32.store8 (i32.const 2048) (i32.const 1))
         (i32.store16 (i32.const 2052) {status})
         (i32.store (i32.const 2056) (i32.const 0)) (i32.store (i32.const 2060) (i32.const 0))
         (i32.store (i32.const 2064) (i32.const {body_ptr})) (i32.store (i32.const 2068) {body_len})
         (i32.const 2048)"
    )
}

/// Continue with no changes: a zeroed result area (empty lists, `none`s).
pub const CONTINUE: &str =
    "(memory.fill (i32.const 2048) (i32.const 0) (i32.const 96)) (i32.const 2048)";

pub fn runtime() -> Arc<Runtime> {
    Runtime::new(RuntimeSettings {
        max_instances: 200,
        ..RuntimeSettings::default()
    })
    .unwrap()
}

pub fn load(
    rt: &Arc<Runtime>,
    name: &str,
    bytes: &[u8],
    settings: FilterSettings,
) -> breakwater_isolate::Filter {
    rt.load_filter_bytes(name, Path::new(&format!("{name}.wasm")), bytes, settings)
        .unwrap_or_else(|e| panic!("{e}"))
}

pub fn request<'a>(headers: &'a [(&'a str, &'a [u8])]) -> breakwater_isolate::Request<'a> {
    breakwater_isolate::Request {
        method: "GET",
        scheme: "http",
        authority: "example.com",
        path: "/p",
        query: "a=1",
        headers: headers.into(),
        client_addr: "127.0.0.1",
        route: "r",
    }
}

/// Counts requests in a global and in linear memory and answers `198 + global + memory`:
/// 200 when every request starts from the snapshot, more if any state leaked.
pub fn counter() -> Vec<u8> {
    let body = format!(
        "(global.set $count (i32.add (global.get $count) (i32.const 1)))
         (i32.store (i32.const 1024) (i32.add (i32.load (i32.const 1024)) (i32.const 1)))
         {}",
        respond(
            "(i32.add (i32.const 198) (i32.add (global.get $count) (i32.load (i32.const 1024))))",
            0,
            "(i32.const 0)"
        )
    );
    component("request-filter", &module(&on_request(&body)))
}

/// The world of the WAT handlers: `wasi:http/types` and streams in, the handler out.
const HANDLER_WORLD: &str = "package breakwater:test-handler;
world handler {
  import wasi:http/types@0.2.12;
  import wasi:io/streams@0.2.12;
  export wasi:http/incoming-handler@0.2.12;
}";

/// Build a `wasi:http` handler component from a core module in WAT.
pub fn handler_component(core_wat: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    resolve
        .push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../isolate/wit"))
        .unwrap();
    let pkg = resolve.push_str("handler.wit", HANDLER_WORLD).unwrap();
    encode(core_wat, &resolve, pkg, "handler")
}

/// A handler that also imports `breakwater:test-handler/absent` (`poke`), which no host
/// provides, and calls it on every request before answering 200.
pub fn handler_with_absent_import() -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    resolve
        .push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../isolate/wit"))
        .unwrap();
    let world = HANDLER_WORLD.replacen(
        "world handler {",
        "interface absent {\n  poke: func();\n}\nworld handler {\n  import absent;",
        1,
    );
    let pkg = resolve.push_str("handler.wit", &world).unwrap();
    let core = handler_module("(call $poke) (call $respond (local.get $out) (i32.const 200))")
        .replacen(
            "(module",
            "(module\n  (import \"breakwater:test-handler/absent\" \"poke\" (func $poke))",
            1,
        );
    encode(&core, &resolve, pkg, "handler")
}

/// A handler from `isolate/guests/wat/NAME.wat`.
pub fn guest_handler(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../isolate/guests/wat")
        .join(format!("{name}.wat"));
    handler_component(&std::fs::read_to_string(path).unwrap())
}

/// A handler module whose `handle` runs `body` with `$request` and `$out` in scope. `$respond`
/// (out, status) answers with that status and an empty body; `$count` is a global; `$method`
/// (request, ptr) writes the request method's case at `ptr` (0 GET, 2 POST, 3 PUT, 4 DELETE).
pub fn handler_module(body: &str) -> String {
    format!(
        r#"(module
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields (result i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-response"
    (func $response (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.set-status-code"
    (func $set_status (param i32 i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.body" (func $body (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]response-outparam.set"
    (func $set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish"
    (func $finish (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request"
    (func $drop_request (param i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-request.method"
    (func $method (param i32 i32)))
  (memory (export "memory") 1)
  (global $count (mut i32) (i32.const 0))
  (global $heap (mut i32) (i32.const 1024))
  (func $respond (param $out i32) (param $status i32)
    (local $response i32) (local $b i32)
    (local.set $response (call $response (call $fields)))
    (drop (call $set_status (local.get $response) (local.get $status)))
    (call $body (local.get $response) (i32.const 0))
    (local.set $b (i32.load (i32.const 4)))
    (call $set (local.get $out) (i32.const 0) (local.get $response) (i32.const 0) (i64.const 0)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $finish (local.get $b) (i32.const 0) (i32.const 0) (i32.const 16)))
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    {body})
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
)"#
    )
}

/// Counts requests in a global and in linear memory and answers `198 + global + memory`.
pub fn counting_handler() -> Vec<u8> {
    handler_component(&handler_module(
        "(global.set $count (i32.add (global.get $count) (i32.const 1)))
         (i32.store (i32.const 512) (i32.add (i32.load (i32.const 512)) (i32.const 1)))
         (call $respond (local.get $out)
           (i32.add (i32.const 198) (i32.add (global.get $count) (i32.load (i32.const 512)))))",
    ))
}

pub fn load_handler(
    rt: &Arc<Runtime>,
    name: &str,
    bytes: &[u8],
    settings: breakwater_isolate::HandlerSettings,
) -> breakwater_isolate::Handler {
    rt.load_handler_bytes(name, Path::new(&format!("{name}.wasm")), bytes, settings)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A guest built from source by isolate/guests/build.sh (tests/run.sh runs it first), in
/// `BREAKWATER_GUESTS` or the target dir.
pub fn guest(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("BREAKWATER_GUESTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the guests with isolate/guests/build.sh (tests/run.sh does)",
        path.display()
    );
    path
}
