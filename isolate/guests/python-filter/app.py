"""A Breakwater filter in Python (componentize-py, world breakwater:filter/filter).

on-request: a request without the `x-api-key` header that the `key` config entry names is
answered 401 at the edge; others go on with `x-checked-by: python` added for the origin.
on-response: adds `x-python-filter: yes` to the response.
"""

from wit_world import exports
from wit_world.imports import config
from wit_world.imports.types import (
    Forward,
    HeaderEdits,
    Request,
    RequestAction,
    RequestAction_Continue,
    RequestAction_Respond,
    Response,
    ResponseHead,
)

NO_EDITS = HeaderEdits(set=[], append=[], remove=[])


class OnRequest(exports.OnRequest):
    def handle(self, req: Request) -> RequestAction:
        key = config.get("key")
        given = next((v for n, v in req.headers if n == "x-api-key"), None)
        if key is not None and given != key.encode():
            return RequestAction_Respond(
                Response(
                    status=401,
                    headers=[("content-type", b"text/plain")],
                    body=b"missing or wrong x-api-key\n",
                )
            )
        edits = HeaderEdits(set=[("x-checked-by", b"python")], append=[], remove=[])
        return RequestAction_Continue(
            Forward(headers=edits, path=None, query=None, pool=None, response_headers=[])
        )


class OnResponse(exports.OnResponse):
    def handle(self, req: Request, resp: ResponseHead) -> HeaderEdits:
        return HeaderEdits(set=[("x-python-filter", b"yes")], append=[], remove=[])
