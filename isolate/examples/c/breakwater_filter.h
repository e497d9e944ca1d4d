// Small helpers for Breakwater filters written in C against the bindings that wit-bindgen's C
// generator makes from isolate/wit (`filter.h`, `request_filter.h`, ...). Include it after
// the generated header, with BW_PREFIX set to the world's prefix (`filter`,
// `request_filter`): the helpers work on that world's string and list types.
//
// Ownership follows the canonical ABI as wit-bindgen's C generator sets it up: whatever a
// filter returns (strings, header lists, bodies) must be allocated with malloc, because the
// generated post-return function frees it after the host has read it; the request passed in
// belongs to the filter and may be freed with the generated `*_free` functions.
#ifndef BREAKWATER_FILTER_HELPERS_H
#define BREAKWATER_FILTER_HELPERS_H

#include <stdlib.h>
#include <string.h>

#define BW_CAT_(a, b) a##b
#define BW_CAT(a, b) BW_CAT_(a, b)
#define BW_STRING BW_CAT(BW_PREFIX, _string_t)
#define BW_LIST_U8 BW_CAT(BW_PREFIX, _list_u8_t)
#define BW_HEADER BW_CAT(BW_PREFIX, _tuple2_string_list_u8_t)
#define BW_OPTION_STRING BW_CAT(BW_PREFIX, _option_string_t)
#define BW_LIST_STRING BW_CAT(BW_PREFIX, _list_string_t)

// A malloc'd copy of `len` bytes of `s` as a WIT string.
static inline BW_STRING bw_string(const char *s, size_t len) {
  BW_STRING out;
  out.ptr = (uint8_t *)malloc(len ? len : 1);
  memcpy(out.ptr, s, len);
  out.len = len;
  return out;
}

static inline BW_STRING bw_cstring(const char *s) { return bw_string(s, strlen(s)); }

static inline BW_OPTION_STRING bw_some(const char *s, size_t len) {
  BW_OPTION_STRING out;
  out.is_some = true;
  out.val = bw_string(s, len);
  return out;
}

static inline BW_LIST_U8 bw_bytes(const char *s, size_t len) {
  BW_LIST_U8 out;
  out.ptr = (uint8_t *)malloc(len ? len : 1);
  memcpy(out.ptr, s, len);
  out.len = len;
  return out;
}

// True when the WIT string `s` equals the C string `c`.
static inline bool bw_eq(const BW_STRING *s, const char *c) {
  size_t n = strlen(c);
  return s->len == n && memcmp(s->ptr, c, n) == 0;
}

// A growable header list: start with `{0}`, push, then hand `ptr`/`len` to the host.
typedef struct {
  BW_HEADER *ptr;
  size_t len;
  size_t cap;
} bw_headers;

static inline void bw_push(bw_headers *h, const char *name, size_t name_len, const char *value,
                           size_t value_len) {
  if (h->len == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 4;
    h->ptr = (BW_HEADER *)realloc(h->ptr, h->cap * sizeof(BW_HEADER));
  }
  h->ptr[h->len].f0 = bw_string(name, name_len);
  h->ptr[h->len].f1 = bw_bytes(value, value_len);
  h->len++;
}

static inline void bw_push_c(bw_headers *h, const char *name, const char *value) {
  bw_push(h, name, strlen(name), value, strlen(value));
}

// The first value of header `name` (lower-case) in a request's or response's header list, or
// NULL; its length goes to `*len`. Points into the list: copy it before freeing the list.
#define bw_find(list, name, len_out)                                                      \
  ({                                                                                      \
    const uint8_t *found_ = NULL;                                                         \
    for (size_t i_ = 0; i_ < (list).len; i_++) {                                          \
      if (bw_eq(&(list).ptr[i_].f0, (name))) {                                            \
        found_ = (list).ptr[i_].f1.ptr;                                                   \
        *(len_out) = (list).ptr[i_].f1.len;                                               \
        break;                                                                            \
      }                                                                                   \
    }                                                                                     \
    found_;                                                                               \
  })

// The filter's `config:` value for `key` as a NUL-terminated malloc'd string, or NULL.
static inline char *bw_config(const char *key) {
  BW_STRING k = {(uint8_t *)key, strlen(key)};
  BW_STRING v;
  if (!breakwater_filter_config_get(&k, &v)) return NULL;
  char *out = (char *)malloc(v.len + 1);
  memcpy(out, v.ptr, v.len);
  out[v.len] = 0;
  free(v.ptr);
  return out;
}

static inline void bw_log(breakwater_filter_log_level_t level, const char *msg) {
  BW_STRING m = {(uint8_t *)msg, strlen(msg)};
  breakwater_filter_log_log(level, &m);
}

// Trims spaces and tabs on both ends of [*s, *s + *len).
static inline void bw_trim(const char **s, size_t *len) {
  while (*len && (**s == ' ' || **s == '\t')) (*s)++, (*len)--;
  while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t')) (*len)--;
}

#endif
