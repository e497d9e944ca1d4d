// header-rewrite: the nginx `proxy_set_header` / `add_header` / `more_clear_headers` of
// Breakwater, as a filter in C (interface 0.2, isolate/wit/0.2, world `filter`: both phases).
// It reads the request's path only when a prefix is to be stripped, and nothing else of the
// request or the response: with 0.2, nothing else of them is copied into it.
//
// Config (all optional; lists are separated by `;`, a pair is `name=value`):
//   request-set:     "x-edge=breakwater; x-region=eu"  set on the request sent upstream
//   request-remove:  "cookie; x-debug"                 removed from it
//   strip-prefix:    "/api"                            removed from the front of the path
//   response-set:    "x-frame-options=DENY"            set on the response to the client
//   response-remove: "server; x-powered-by"            removed from it
#include "filter.h"
#define BW_PREFIX filter
#include "../c/breakwater_filter.h"

// Calls `item(name, name_len, value, value_len, ctx)` for each `name=value` of a `;` list (value
// empty when there is no `=`).
static void each_item(const char *list,
                      void (*item)(const char *, size_t, const char *, size_t, void *),
                      void *ctx) {
  const char *p = list;
  while (p && *p) {
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    const char *name = p;
    size_t name_len = eq ? (size_t)(eq - p) : len;
    const char *value = eq ? eq + 1 : p + len;
    size_t value_len = eq ? len - name_len - 1 : 0;
    bw_trim(&name, &name_len);
    bw_trim(&value, &value_len);
    if (name_len) item(name, name_len, value, value_len, ctx);
    p = end ? end + 1 : NULL;
  }
}

static void push_pair(const char *n, size_t nl, const char *v, size_t vl, void *ctx) {
  bw_push((bw_headers *)ctx, n, nl, v, vl);
}

typedef struct {
  filter_string_t *ptr;
  size_t len;
  size_t cap;
} names;

static void push_name(const char *n, size_t nl, const char *v, size_t vl, void *ctx) {
  (void)v, (void)vl;
  names *out = (names *)ctx;
  if (out->len == out->cap) {
    out->cap = out->cap ? out->cap * 2 : 4;
    out->ptr = realloc(out->ptr, out->cap * sizeof(filter_string_t));
  }
  out->ptr[out->len++] = bw_string(n, nl);
}

// Edits from the config keys `set_key` and `remove_key`.
static breakwater_filter_types_header_edits_t edits_from(const char *set_key,
                                                         const char *remove_key) {
  breakwater_filter_types_header_edits_t edits = {0};
  char *set = bw_config(set_key);
  char *remove = bw_config(remove_key);
  bw_headers set_list = {0};
  names remove_list = {0};
  each_item(set, push_pair, &set_list);
  each_item(remove, push_name, &remove_list);
  edits.set.ptr = set_list.ptr;
  edits.set.len = set_list.len;
  edits.remove.ptr = remove_list.ptr;
  edits.remove.len = remove_list.len;
  free(set);
  free(remove);
  return edits;
}

void exports_breakwater_filter_on_request_handle(exports_breakwater_filter_on_request_borrow_request_t req,
                                                 exports_breakwater_filter_on_request_request_action_t *ret) {
  memset(ret, 0, sizeof(*ret));
  ret->tag = BREAKWATER_FILTER_TYPES_REQUEST_ACTION_CONTINUE;
  breakwater_filter_types_forward_t *fwd = &ret->val.continue_;
  fwd->headers = edits_from("request-set", "request-remove");
  char *prefix = bw_config("strip-prefix");
  size_t n = prefix ? strlen(prefix) : 0;
  if (n) {
    filter_string_t path;
    breakwater_filter_types_method_request_path(req, &path);
    if (path.len >= n && memcmp(path.ptr, prefix, n) == 0) {
      const char *rest = (const char *)path.ptr + n;
      size_t rest_len = path.len - n;
      if (!rest_len) {
        fwd->path = bw_some("/", 1);
      } else if (rest[0] == '/') {
        fwd->path = bw_some(rest, rest_len);
      }  // else "/apix" is not under "/api": keep it
    }
    filter_string_free(&path);
  }
  free(prefix);
  // A call drops what it borrowed before it returns (the component model traps otherwise).
  breakwater_filter_types_request_drop_borrow(req);
}

void exports_breakwater_filter_on_response_handle(exports_breakwater_filter_on_response_borrow_request_t req,
                                                  exports_breakwater_filter_on_response_borrow_response_head_t resp,
                                                  exports_breakwater_filter_on_response_header_edits_t *ret) {
  *ret = edits_from("response-set", "response-remove");
  breakwater_filter_types_request_drop_borrow(req);
  breakwater_filter_types_response_head_drop_borrow(resp);
}
