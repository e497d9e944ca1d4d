"""A Spin 2 HTTP component, written with the Spin Python SDK 3 (spin-sdk 3.4.1, the SDK of
Spin 2 and 3 apps: WASI 0.2, `fermyon:spin@2.0.0` imports) and built unchanged with
`componentize-py -w spin-http componentize app -o spin2-hello.wasm`.

  GET /            -> "Hello from Spin 2 on Breakwater!"
  GET /var/NAME    -> the variable NAME (fermyon:spin/variables), 500 when undefined
  GET /kv/NAME     -> the value stored under NAME in the default store (404 when absent)
  PUT /kv/NAME     -> stores the request body under NAME
  DELETE /kv/NAME  -> deletes NAME
  GET /kv-exists/NAME -> "true" or "false"
  GET /kv-keys     -> every key of the store, sorted, comma-separated
  GET /kv-store/LABEL -> opens the store LABEL: only "default" exists (the error's name otherwise)
  GET /redis       -> fermyon:spin/redis at redis://127.0.0.1:6379, which the component's
                      allowed_outbound_hosts does not list: the error's name
  GET /redis/incr  -> fermyon:spin/redis at the `redis_address` variable: SET, INCR, GET,
                      SADD, SMEMBERS, SREM, DEL and `execute` through one connection
"""

from spin_sdk import http, key_value, redis, variables
from spin_sdk.http import Request, Response
from spin_sdk.wit.imports.redis import RedisParameter_Binary, RedisParameter_Int64
from spin_sdk.wit.types import Err


def text(status: int, body: str) -> Response:
    return Response(status, {"content-type": "text/plain"}, bytes(body, "utf-8"))


def error_name(e: Err) -> str:
    return type(e.value).__name__


def reply(r) -> str:
    """One `execute` result as TYPE:VALUE."""
    name = type(r).__name__.split("_")[-1].lower()
    value = getattr(r, "value", None)
    if isinstance(value, bytes):
        value = value.decode()
    return name if value is None else f"{name}:{value}"


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        path = request.uri.split("?", 1)[0]
        if path == "/":
            return text(200, "Hello from Spin 2 on Breakwater!\n")
        if path.startswith("/var/"):
            try:
                return text(200, variables.get(path[len("/var/"):]) + "\n")
            except Err as e:
                return text(500, error_name(e) + "\n")
        if path.startswith("/kv/"):
            key = path[len("/kv/"):]
            with key_value.open_default() as store:
                if request.method == "PUT":
                    store.set(key, request.body or b"")
                    return text(201, "stored\n")
                if request.method == "DELETE":
                    store.delete(key)
                    return text(204, "")
                value = store.get(key)
                if value is None:
                    return text(404, "no such key\n")
                return Response(200, {"content-type": "application/octet-stream"}, value)
        if path.startswith("/kv-exists/"):
            with key_value.open_default() as store:
                return text(200, str(store.exists(path[len("/kv-exists/"):])).lower() + "\n")
        if path == "/kv-keys":
            with key_value.open_default() as store:
                return text(200, ",".join(sorted(store.get_keys())) + "\n")
        if path.startswith("/kv-store/"):
            try:
                with key_value.open(path[len("/kv-store/"):]):
                    return text(200, "opened\n")
            except Err as e:
                return text(404, error_name(e) + "\n")
        if path == "/redis":
            try:
                redis.open("redis://127.0.0.1:6379")
                return text(200, "opened\n")
            except Err as e:
                return text(403, error_name(e) + "\n")
        if path == "/redis/incr":
            with redis.open(variables.get("redis_address")) as db:
                db.set("greeting2", b"hello")
                hits = db.incr("hits2")
                value = db.get("greeting2")
                db.sadd("members2", ["a", "b", "c"])
                removed = db.srem("members2", ["c"])
                members = sorted(db.smembers("members2"))
                deleted = db.del_(["members2"])
                replies = db.execute("INCRBY", [RedisParameter_Binary(b"hits2"), RedisParameter_Int64(10)])
                replies += db.execute("GET", [RedisParameter_Binary(b"greeting2")])
                replies += db.execute("SET", [RedisParameter_Binary(b"k2"), RedisParameter_Binary(b"v")])
                replies += db.execute("GET", [RedisParameter_Binary(b"no-such-key2")])
                executed = ",".join(reply(r) for r in replies)
                return text(200, f"{hits} {value.decode()} {','.join(members)} {removed} {deleted} {executed}\n")
        return text(404, "not found\n")
