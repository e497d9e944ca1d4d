"""A Spin HTTP component, written with the Spin Python SDK (spin-sdk 5) and built unchanged
with `componentize-py -w spin:up/http-trigger@4.1.0 componentize app -o spin-hello.wasm`.
Breakwater serves it like Spin does: wasi:http 0.3 handler, spin:variables from the
component's `config:` map, spin:key-value as an in-memory store per component.

  GET /            -> "Hello from Spin on Breakwater!" (+ the greeting variable when set)
  GET /kv/NAME     -> the value stored under NAME (404 when absent)
  PUT /kv/NAME     -> stores the request body under NAME
  GET /kv-keys     -> every key of the store (get-keys), sorted, comma-separated
  GET /counter     -> increments and returns the in-memory counter (shared per component)
  GET /global      -> increments and returns a module global (1 on every request when each
                      request starts from the same state: fresh, or a warm snapshot of GET /)
  GET /missing-var -> 500: reading an undefined variable is an error
  GET /boom        -> raises: the SDK answers 500
  GET /redis       -> opens spin:redis at redis://127.0.0.1:6379, which the component's
                      allowed_outbound_hosts does not list: the call fails (500)
  GET /redis/incr  -> spin:redis at the `redis_address` variable: SET, INCR, GET, SADD,
                      SMEMBERS, DEL through one connection; "HITS VALUE MEMBERS DELETED"
  GET /forever     -> never answers (the deadline ends it)
  GET /hog         -> allocates without bound (the memory limit ends it)
"""

from spin_sdk import http, key_value, redis, util, variables
from spin_sdk.http import Request, Response


requests_seen = 0


def text(status: int, body: str) -> Response:
    return Response(status, {"content-type": "text/plain"}, bytes(body, "utf-8"))


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        path = request.uri.split("?", 1)[0]
        if path == "/" or path == "/hello":
            try:
                greeting = await variables.get("greeting")
            except Exception:
                greeting = "Hello from Spin on Breakwater!"
            return text(200, greeting + "\n")
        if path == "/missing-var":
            value = await variables.get("no_such_variable")
            return text(200, value)
        if path.startswith("/kv/"):
            key = path[len("/kv/"):]
            with await key_value.open_default() as store:
                if request.method == "PUT":
                    await store.set(key, request.body or b"")
                    return text(201, "stored\n")
                if request.method == "DELETE":
                    await store.delete(key)
                    return text(204, "")
                value = await store.get(key)
                if value is None:
                    return text(404, "no such key\n")
                return Response(200, {"content-type": "application/octet-stream"}, value)
        if path == "/kv-keys":
            with await key_value.open_default() as store:
                keys = await util.collect(await store.get_keys())
                return text(200, ",".join(sorted(keys)) + "\n")
        if path == "/global":
            global requests_seen
            requests_seen += 1
            return text(200, f"{requests_seen}\n")
        if path == "/counter":
            with await key_value.open_default() as store:
                current = await store.get("counter")
                n = int(current or b"0") + 1
                await store.set("counter", bytes(str(n), "utf-8"))
                return text(200, f"{n}\n")
        if path == "/redis":
            await redis.open("redis://127.0.0.1:6379")
            return text(200, "unreachable\n")
        if path == "/redis/incr":
            address = await variables.get("redis_address")
            with await redis.open(address) as db:
                await db.set("greeting", b"hello")
                hits = await db.incr("hits")
                value = await db.get("greeting")
                await db.sadd("members", ["a", "b"])
                members = sorted(await db.smembers("members"))
                deleted = await db.del_(["members"])
                return text(200, f"{hits} {value.decode()} {','.join(members)} {deleted}\n")
        if path == "/forever":
            while True:
                pass
        if path == "/hog":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if path == "/boom":
            raise RuntimeError("boom")
        return text(404, "not found\n")
