"""The idle client of bench/connections.sh and bench/idle-heap.sh: opens N connections to
127.0.0.1:PORT, sends one GET /1k on each (HTTP/1.1, or HTTP/2 with prior knowledge; over
TLS for tls-h1 and tls-h2, which ask for http/1.1 or h2 by ALPN and do not verify the
certificate), reads every answer, prints "open" and holds them until stdin closes.

    python3 bench/idle_client.py PORT N h1|h2|tls-h1|tls-h2 burst|one

burst: every request is sent before any answer is read (all in flight at once; a TLS
handshake is done before its request is sent); one: each connection is answered before the
next opens."""
import socket, ssl, sys
port, n, proto, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
tls = None
if proto.startswith("tls-"):
    proto = proto[len("tls-"):]
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    tls.set_alpn_protocols(["h2" if proto == "h2" else "http/1.1"])
def frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
# The header block curl 7.88 sends for GET /1k (since 2026-12-07; before, a hand-made block of
# literals without indexing): HPACK with incremental indexing and Huffman coding, as common
# clients encode, so that the servers' header tables hold what they hold for real clients.
block = bytes.fromhex("8204032f316b86418b089d5c0b8170dc0bcd3eff7a8825b650c3abbcf2e153032a2f2a")
h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") + frame(1, 5, 1, block)
h1 = b"GET /1k HTTP/1.1\r\nHost: a\r\n\r\n"
socks = []
def answered(s):
    data = b""
    if proto == "h1":
        while not (b"\r\n\r\n" in data and len(data) >= data.index(b"\r\n\r\n") + 4 + 1024):
            chunk = s.recv(65536)
            if not chunk: sys.exit("closed early")
            data += chunk
    else:
        # Read frames until DATA with END_STREAM on stream 1; ack the server's SETTINGS.
        done = False
        while not done:
            while len(data) < 9:
                chunk = s.recv(65536)
                if not chunk: sys.exit("closed early")
                data += chunk
            length = int.from_bytes(data[:3], "big")
            while len(data) < 9 + length:
                chunk = s.recv(65536)
                if not chunk: sys.exit("closed early")
                data += chunk
            kind, flags = data[3], data[4]
            if kind == 4 and not flags & 1:
                s.sendall(frame(4, 1, 0, b""))
            if kind == 0 and flags & 1:
                done = True
            data = data[9 + length:]
# burst: every request sent before any answer is read (all in flight at once); one: each
# connection answered before the next opens.
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if tls:
        s = tls.wrap_socket(s, server_hostname="bench.test")
        if s.selected_alpn_protocol() != ("h2" if proto == "h2" else "http/1.1"):
            sys.exit(f"ALPN chose {s.selected_alpn_protocol()}")
    s.sendall(h2 if proto == "h2" else h1)
    socks.append(s)
    if mode == "one":
        answered(s)
if mode == "burst":
    for s in socks:
        answered(s)
print("open", flush=True)
sys.stdin.read()
