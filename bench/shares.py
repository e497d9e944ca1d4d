#!/usr/bin/env python3
"""Where a profile's time goes, by the parts of the request path: the share of all samples
whose stack contains each part (inclusive, so parts overlap), from a collapsed-stack file
(`CASE.folded.gz` as bench/profile.sh commits it, or a plain `CASE.folded`).

    bench/shares.py bench/results/profile-DATE/pass-through.folded > .../pass-through-shares.md
"""
import gzip
import re
import sys

# (part, regular expression on the whole stack)
PARTS = [
    ("system calls (all)", r"entry_SYSCALL"),
    ("  writes (sendto, incl. loopback delivery to the receiver)", r"sys_write|sys_sendto|sys_writev|sys_sendmsg"),
    ("  reads (recvfrom)", r"sys_read|sys_recvfrom"),
    ("  epoll_wait", r"epoll_wait"),
    ("switched out and back in (finish_task_switch)", r"finish_task_switch"),
    ("client stream guard (Guarded, incl. its syscalls)", r"Guarded"),
    ("pingora: request head read (read_request)", r"v1::server::HttpSession::read_request"),
    ("pingora: origin response read (read_resp*)", r"read_resp"),
    ("pingora: response head write", r"write_response_header"),
    ("pingora: origin connection pool", r"release_stream|get_http_connection|reused_http_session"),
    ("pingora: timeouts (pingora_timeout)", r"pingora_timeout"),
    ("http::HeaderMap", r"HeaderMap"),
    ("allocator (mimalloc)", r"\bmi_|_mi_"),
    ("memcpy/memmove", r"memmove|memcpy"),
    ("tokio scheduler", r"tokio::runtime::scheduler"),
    ("Edge::request_filter (guard, route, filters)", r"ProxyHttp>::request_filter"),
    ("Edge::upstream_request_filter (hop-by-hop, forwarding headers)", r"upstream_request_filter"),
    ("  of which forwarding and hop-by-hop edits", r"strip_hop|add_forwarding"),
    ("Edge::response_filter", r"ProxyHttp>::response_filter"),
    ("Edge::logging (metrics, access log)", r"ProxyHttp>::logging"),
    ("Edge::upstream_peer", r"upstream_peer"),
    ("Wasm (wasmtime, isolate)", r"wasmtime|breakwater_isolate"),
]


def main(path):
    rows = []
    for line in (gzip.open(path, "rt") if path.endswith(".gz") else open(path)):
        line = line.rstrip("\n")
        i = line.rfind(" ")
        rows.append((line[:i], int(line[i + 1:])))
    total = sum(n for _, n in rows)
    print(f"Inclusive share of the profile by part, from `{path.split('/')[-1]}` (total weight {total}):\n")
    print("| part | share |")
    print("|---|---|")
    for name, pattern in PARTS:
        r = re.compile(pattern)
        n = sum(c for s, c in rows if r.search(s))
        print(f"| {name} | {100 * n / total:.1f}% |")


if __name__ == "__main__":
    main(sys.argv[1])
