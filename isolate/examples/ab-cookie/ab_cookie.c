// ab-cookie: an A/B split by cookie, as a filter in C (world `request-filter`).
//
// A request with `Cookie: ab=b` goes to the pool named by `pool-b` (which the route must
// allow); `ab=a` stays on the route's pool. A request without the cookie is assigned a
// variant from a hash of the client address and user agent (so a client keeps its variant),
// and the response sets the cookie. The origin sees the variant as `x-ab-variant`.
//
// Config: pool-b (required), cookie (default `ab`), percent-b (0-100, default 50).
#include <stdio.h>

#include "request_filter.h"
#define BW_PREFIX request_filter
#include "../c/breakwater_filter.h"

// The value of cookie `name` in a `Cookie` header (`a=1; b=2`), or 0 when absent.
static char cookie_value(const uint8_t *header, size_t len, const char *name) {
  size_t n = strlen(name);
  size_t i = 0;
  while (i < len) {
    while (i < len && (header[i] == ' ' || header[i] == ';')) i++;
    if (i + n < len && memcmp(header + i, name, n) == 0 && header[i + n] == '=')
      return i + n + 1 < len ? (char)header[i + n + 1] : 0;
    while (i < len && header[i] != ';') i++;
  }
  return 0;
}

static uint32_t fnv1a(uint32_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

void exports_breakwater_filter_on_request_handle(exports_breakwater_filter_on_request_request_t *req,
                                                 exports_breakwater_filter_on_request_request_action_t *ret) {
  memset(ret, 0, sizeof(*ret));
  ret->tag = BREAKWATER_FILTER_TYPES_REQUEST_ACTION_CONTINUE;
  breakwater_filter_types_forward_t *fwd = &ret->val.continue_;
  char *cookie = bw_config("cookie");
  char *pool_b = bw_config("pool-b");
  char *percent = bw_config("percent-b");
  const char *name = cookie ? cookie : "ab";
  int percent_b = percent ? atoi(percent) : 50;

  size_t len = 0;
  const uint8_t *header = bw_find(req->headers, "cookie", &len);
  char variant = header ? cookie_value(header, len, name) : 0;
  bw_headers response = {0};
  if (variant != 'a' && variant != 'b') {
    size_t ua_len = 0;
    const uint8_t *ua = bw_find(req->headers, "user-agent", &ua_len);
    uint32_t h = fnv1a(2166136261u, req->client_addr.ptr, req->client_addr.len);
    h = fnv1a(h, ua ? ua : (const uint8_t *)"", ua ? ua_len : 0);
    variant = (int)(h % 100) < percent_b ? 'b' : 'a';
    char set_cookie[128];
    snprintf(set_cookie, sizeof set_cookie, "%s=%c; Path=/; Max-Age=2592000; SameSite=Lax", name,
             variant);
    bw_push_c(&response, "set-cookie", set_cookie);
  }
  if (variant == 'b' && pool_b) fwd->pool = bw_some(pool_b, strlen(pool_b));
  bw_headers set = {0};
  bw_push(&set, "x-ab-variant", 12, &variant, 1);
  fwd->headers.set.ptr = set.ptr;
  fwd->headers.set.len = set.len;
  fwd->response_headers.ptr = response.ptr;
  fwd->response_headers.len = response.len;
  free(cookie);
  free(pool_b);
  free(percent);
  exports_breakwater_filter_on_request_request_free(req);
}
