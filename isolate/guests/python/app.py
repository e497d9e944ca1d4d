"""A `wasi:http` handler in Python (componentize-py), as `wasmtime serve` and Spin run it.

GET /anything       -> "Hello from Python: GET /anything, 0 bytes, count=1, greeting=..."
POST (with a body)  -> the same, with the body's length
GET /outbound?HOST  -> makes an outgoing GET to http://HOST/ and reports what happened

`count` counts requests in a module global: it is 1 on every request when each request gets
a fresh instance. `greeting` comes from the GREETING environment variable (the component's
`config:` map in Breakwater, `--env` in `wasmtime serve`).
"""

import asyncio
import os

from componentize_py_types import Ok
from poll_loop import PollLoop, Sink, Stream, send
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme_Http,
)

count = 0


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        loop = PollLoop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(handle_async(request, response_out))


def method_name(method) -> str:
    name = type(method).__name__
    if name == "Method_Other":
        return method.value
    return name.removeprefix("Method_").upper()


async def outbound(host: str) -> str:
    request = OutgoingRequest(Fields())
    request.set_scheme(Scheme_Http())
    request.set_authority(host)
    request.set_path_with_query("/")
    try:
        response = await send(request)
        return f"outbound status {response.status()}\n"
    except Exception as e:  # the host refused or the request failed
        return f"outbound error {e}\n"


async def handle_async(request: IncomingRequest, response_out: ResponseOutparam) -> None:
    global count
    count += 1
    method = method_name(request.method())
    path = request.path_with_query() or "/"
    received = 0
    stream = Stream(request.consume())
    while True:
        chunk = await stream.next()
        if chunk is None:
            break
        received += len(chunk)
    if path.startswith("/outbound?"):
        text = await outbound(path.split("?", 1)[1])
    else:
        greeting = os.environ.get("GREETING", "none")
        text = (
            f"Hello from Python: {method} {path}, {received} bytes, "
            f"count={count}, greeting={greeting}\n"
        )
    response = OutgoingResponse(
        Fields.from_list([("content-type", b"text/plain"), ("x-guest", b"python")])
    )
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    sink = Sink(body)
    await sink.send(text.encode())
    sink.close()
