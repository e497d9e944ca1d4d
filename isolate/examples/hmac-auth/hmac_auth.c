// hmac-auth: rejects requests without a valid HMAC-signed bearer token, answering 401 itself
// (the origin never sees them), as a filter in C (world `request-filter`).
//
//   Authorization: Bearer <subject>.<expires>.<signature>
//
// `expires` is a Unix time in seconds (0: never) and `signature` is the lower-case hex
// HMAC-SHA256 of `<subject>.<expires>` under the configured secret. A valid token's subject
// goes upstream as `x-auth-subject` and the `authorization` header is removed.
//
// Config: secret (required; without it every request is refused), header (default
// `authorization`).
#include <stdio.h>
#include <time.h>

#include "request_filter.h"
#define BW_PREFIX request_filter
#include "../c/breakwater_filter.h"

// ---- SHA-256 (FIPS 180-4) and HMAC (RFC 2104) --------------------------------------------
typedef struct {
  uint32_t h[8];
  uint8_t buf[64];
  size_t buf_len;
  uint64_t total;
} sha256;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256 *s, const uint8_t *p) {
  uint32_t w[64], a, b, c, d, e, f, g, h;
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
  e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
  s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_init(sha256 *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->buf_len = 0;
  s->total = 0;
}

static void sha256_update(sha256 *s, const uint8_t *p, size_t n) {
  s->total += n;
  while (n) {
    size_t take = 64 - s->buf_len < n ? 64 - s->buf_len : n;
    memcpy(s->buf + s->buf_len, p, take);
    s->buf_len += take, p += take, n -= take;
    if (s->buf_len == 64) sha256_block(s, s->buf), s->buf_len = 0;
  }
}

static void sha256_final(sha256 *s, uint8_t out[32]) {
  uint64_t bits = s->total * 8;
  uint8_t pad = 0x80, zero = 0, len[8];
  sha256_update(s, &pad, 1);
  while (s->buf_len != 56) sha256_update(s, &zero, 1);
  for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha256_update(s, len, 8);
  for (int i = 0; i < 8; i++)
    out[4 * i] = s->h[i] >> 24, out[4 * i + 1] = s->h[i] >> 16, out[4 * i + 2] = s->h[i] >> 8,
            out[4 * i + 3] = s->h[i];
}

static void hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t msg_len,
                        uint8_t out[32]) {
  uint8_t k[64] = {0}, pad[64], inner[32];
  sha256 s;
  if (key_len > 64) {
    sha256_init(&s), sha256_update(&s, key, key_len), sha256_final(&s, k);
  } else {
    memcpy(k, key, key_len);
  }
  for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
  sha256_init(&s), sha256_update(&s, pad, 64), sha256_update(&s, msg, msg_len);
  sha256_final(&s, inner);
  for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
  sha256_init(&s), sha256_update(&s, pad, 64), sha256_update(&s, inner, 32);
  sha256_final(&s, out);
}

// ---- the filter ------------------------------------------------------------------------

// Why a token is refused, for the log and the `error_description`.
static const char *check(const uint8_t *value, size_t len, const char *secret, size_t *subject_len) {
  static const char bearer[] = "Bearer ";
  if (!secret || !*secret) return "no secret configured";
  if (len < sizeof bearer - 1 || strncasecmp((const char *)value, bearer, sizeof bearer - 1))
    return "not a bearer token";
  const uint8_t *token = value + sizeof bearer - 1;
  size_t token_len = len - (sizeof bearer - 1);
  const uint8_t *dot1 = memchr(token, '.', token_len);
  if (!dot1) return "malformed token";
  const uint8_t *dot2 = memchr(dot1 + 1, '.', token_len - (size_t)(dot1 + 1 - token));
  if (!dot2) return "malformed token";
  size_t signed_len = (size_t)(dot2 - token);
  const uint8_t *sig = dot2 + 1;
  size_t sig_len = token_len - signed_len - 1;
  if (sig_len != 64) return "malformed signature";
  uint8_t mac[32];
  hmac_sha256((const uint8_t *)secret, strlen(secret), token, signed_len, mac);
  static const char hex[] = "0123456789abcdef";
  uint8_t diff = 0;  // constant time: no early exit on the first wrong digit
  for (int i = 0; i < 32; i++) {
    diff |= sig[2 * i] ^ hex[mac[i] >> 4];
    diff |= sig[2 * i + 1] ^ hex[mac[i] & 15];
  }
  if (diff) return "bad signature";
  long long expires = 0;
  for (const uint8_t *p = dot1 + 1; p < dot2; p++) {
    if (*p < '0' || *p > '9' || expires > 1000000000000LL) return "malformed expiry";
    expires = expires * 10 + (*p - '0');
  }
  if (expires != 0 && expires < (long long)time(NULL)) return "token expired";
  *subject_len = (size_t)(dot1 - token);
  return NULL;
}

void exports_breakwater_filter_on_request_handle(exports_breakwater_filter_on_request_request_t *req,
                                                 exports_breakwater_filter_on_request_request_action_t *ret) {
  memset(ret, 0, sizeof(*ret));
  char *secret = bw_config("secret");
  char *header = bw_config("header");
  const char *name = header ? header : "authorization";
  size_t len = 0, subject_len = 0;
  const uint8_t *value = bw_find(req->headers, name, &len);
  const char *why = value ? check(value, len, secret, &subject_len) : "no token";
  if (why) {
    ret->tag = BREAKWATER_FILTER_TYPES_REQUEST_ACTION_RESPOND;
    breakwater_filter_types_response_t *r = &ret->val.respond;
    char challenge[160];
    snprintf(challenge, sizeof challenge,
             "Bearer realm=\"breakwater\", error=\"invalid_token\", error_description=\"%s\"", why);
    bw_headers h = {0};
    bw_push_c(&h, "www-authenticate", challenge);
    bw_push_c(&h, "content-type", "text/plain");
    bw_push_c(&h, "cache-control", "no-store");
    r->status = 401;
    r->headers.ptr = h.ptr;
    r->headers.len = h.len;
    char body[96];
    int n = snprintf(body, sizeof body, "unauthorized: %s\n", why);
    r->body = bw_bytes(body, (size_t)n);
  } else {
    ret->tag = BREAKWATER_FILTER_TYPES_REQUEST_ACTION_CONTINUE;
    breakwater_filter_types_forward_t *fwd = &ret->val.continue_;
    const char *subject = (const char *)value + strlen("Bearer ");
    bw_headers set = {0};
    bw_push(&set, "x-auth-subject", 14, subject, subject_len);
    fwd->headers.set.ptr = set.ptr;
    fwd->headers.set.len = set.len;
    fwd->headers.remove.ptr = malloc(sizeof(request_filter_string_t));
    fwd->headers.remove.ptr[0] = bw_cstring(name);
    fwd->headers.remove.len = 1;
  }
  free(secret);
  free(header);
  exports_breakwater_filter_on_request_request_free(req);
}
