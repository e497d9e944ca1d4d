// A `wasi:http` handler in C (world `wasi:http/proxy@0.2.12`, bindings from wit-bindgen's C
// generator): answers every request with `Hello from C: METHOD PATH, count=N` and
// `content-type: text/plain`. `count` counts requests in a global: 1 on every request when
// each gets a fresh instance. Built by isolate/guests/build.sh with the preview1 proxy adapter;
// `wasmtime serve` and Spin run it the same way.
#include <stdio.h>
#include <string.h>

#include "http_handler.h"

static int count = 0;

static const char *method_name(const wasi_http_types_method_t *m) {
  switch (m->tag) {
    case WASI_HTTP_TYPES_METHOD_GET: return "GET";
    case WASI_HTTP_TYPES_METHOD_HEAD: return "HEAD";
    case WASI_HTTP_TYPES_METHOD_POST: return "POST";
    case WASI_HTTP_TYPES_METHOD_PUT: return "PUT";
    case WASI_HTTP_TYPES_METHOD_DELETE: return "DELETE";
    case WASI_HTTP_TYPES_METHOD_OPTIONS: return "OPTIONS";
    case WASI_HTTP_TYPES_METHOD_PATCH: return "PATCH";
    default: return "OTHER";
  }
}

void exports_wasi_http_incoming_handler_handle(
    exports_wasi_http_incoming_handler_own_incoming_request_t request,
    exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
  count++;
  wasi_http_types_borrow_incoming_request_t req = wasi_http_types_borrow_incoming_request(request);
  wasi_http_types_method_t method;
  wasi_http_types_method_incoming_request_method(req, &method);
  http_handler_string_t path = {0};
  bool has_path = wasi_http_types_method_incoming_request_path_with_query(req, &path);

  char text[512];
  int n = snprintf(text, sizeof text, "Hello from C: %s %.*s, count=%d\n", method_name(&method),
                   has_path ? (int)path.len : 1, has_path ? (const char *)path.ptr : "/", count);
  if (n < 0 || n >= (int)sizeof text) n = (int)sizeof text - 1;

  wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
  wasi_http_types_field_name_t name = {(uint8_t *)"content-type", 12};
  wasi_http_types_field_value_t value = {(uint8_t *)"text/plain", 10};
  wasi_http_types_header_error_t header_err;
  wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(headers), &name, &value,
                                       &header_err);
  wasi_http_types_own_outgoing_response_t response =
      wasi_http_types_constructor_outgoing_response(headers);
  wasi_http_types_own_outgoing_body_t body;
  wasi_http_types_method_outgoing_response_body(wasi_http_types_borrow_outgoing_response(response),
                                                &body);
  wasi_http_types_result_own_outgoing_response_error_code_t result = {.is_err = false};
  result.val.ok = response;
  wasi_http_types_static_response_outparam_set(response_out, &result);

  wasi_http_types_own_output_stream_t stream;
  if (wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body),
                                                 &stream)) {
    http_handler_list_u8_t contents = {(uint8_t *)text, (size_t)n};
    wasi_io_streams_stream_error_t stream_err;
    wasi_io_streams_method_output_stream_blocking_write_and_flush(
        wasi_io_streams_borrow_output_stream(stream), &contents, &stream_err);
    wasi_io_streams_output_stream_drop_own(stream);
  }
  wasi_http_types_error_code_t finish_err;
  wasi_http_types_static_outgoing_body_finish(body, NULL, &finish_err);
  if (has_path) http_handler_string_free(&path);
  wasi_http_types_method_free(&method);
  wasi_http_types_incoming_request_drop_own(request);
}
