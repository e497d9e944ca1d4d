;; A `wasi:http` handler that streams the request body back as the response body, chunk by
;; chunk (at most 4 KiB each: the most `blocking-write-and-flush` takes), with status 200. Shows request and response streaming.
(module
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields (result i32)))
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
  (import "wasi:http/types@0.2.12" "[method]incoming-request.consume"
    (func $consume (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-body.stream"
    (func $stream (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request"
    (func $drop_request (param i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-body"
    (func $drop_incoming_body (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]input-stream.blocking-read"
    (func $read (param i32 i64 i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush"
    (func $write_flush (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]input-stream"
    (func $drop_input (param i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream"
    (func $drop_output (param i32)))

  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 1024))

  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $request i32) (param $out i32)
    (local $in_body i32) (local $in i32) (local $response i32) (local $body i32) (local $os i32)
    (call $consume (local.get $request) (i32.const 0))
    (local.set $in_body (i32.load (i32.const 4)))
    (call $stream (local.get $in_body) (i32.const 0))
    (local.set $in (i32.load (i32.const 4)))
    (local.set $response (call $response (call $fields)))
    (call $body (local.get $response) (i32.const 0))
    (local.set $body (i32.load (i32.const 4)))
    (call $set (local.get $out) (i32.const 0) (local.get $response) (i32.const 0) (i64.const 0)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $write (local.get $body) (i32.const 0))
    (local.set $os (i32.load (i32.const 4)))
    (block $done
      (loop $next
        ;; result<list<u8>, stream-error>: tag at 16, list at 20/24.
        (global.set $heap (i32.const 1024))
        (call $read (local.get $in) (i64.const 4096) (i32.const 16))
        (br_if $done (i32.load8_u (i32.const 16)))
        (call $write_flush (local.get $os) (i32.load (i32.const 20)) (i32.load (i32.const 24))
          (i32.const 32))
        (br $next)))
    (call $drop_input (local.get $in))
    (call $drop_incoming_body (local.get $in_body))
    (call $drop_request (local.get $request))
    (call $drop_output (local.get $os))
    (call $finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 32)))

  ;; Bump allocator that grows memory; reset before every read.
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
      (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (block $ok
      (br_if $ok (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
      (drop (memory.grow (i32.add (i32.const 1) (i32.shr_u
        (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16))))))
    (local.get $p))
)
