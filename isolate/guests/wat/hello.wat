;; A `wasi:http` handler written by hand: answers every request with 200, a `content-type`
;; and a short body. The embedded demo serves `/hello` with it; tests and benchmarks use it as
;; the trivial handler. Built into a component at run time with the WIT in `isolate/wit/wasi`.
(module
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields (result i32)))
  (import "wasi:http/types@0.2.12" "[method]fields.append"
    (func $append (param i32 i32 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-response"
    (func $response (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.body"
    (func $body (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]response-outparam.set"
    (func $set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-body.write"
    (func $write (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish"
    (func $finish (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request"
    (func $drop_request (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush"
    (func $write_flush (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream"
    (func $drop_stream (param i32)))

  (memory (export "memory") 1)
  ;; 0..64: return areas. 64..: constant strings.
  (data (i32.const 64) "content-type")
  (data (i32.const 80) "text/plain; charset=utf-8")
  (data (i32.const 128) "Hello from a WebAssembly handler at the edge.\n")

  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    (local $headers i32) (local $response i32) (local $body i32) (local $stream i32)
    (call $drop_request (local.get $request))
    (local.set $headers (call $fields))
    (call $append (local.get $headers) (i32.const 64) (i32.const 12) (i32.const 80) (i32.const 25)
      (i32.const 0))
    (local.set $response (call $response (local.get $headers)))
    ;; result<outgoing-body>: tag at 0, handle at 4.
    (call $body (local.get $response) (i32.const 0))
    (local.set $body (i32.load (i32.const 4)))
    ;; ok(response): status 200 is the default.
    (call $set (local.get $out) (i32.const 0) (local.get $response) (i32.const 0) (i64.const 0)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $write (local.get $body) (i32.const 0))
    (local.set $stream (i32.load (i32.const 4)))
    (call $write_flush (local.get $stream) (i32.const 128) (i32.const 46) (i32.const 16))
    (call $drop_stream (local.get $stream))
    ;; finish(body, none)
    (call $finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 16)))

  ;; The host never passes lists into `handle`; a bump allocator is enough for the ABI.
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
)
