"""A Breakwater filter in Python (componentize-py, world breakwater:filter/filter@0.2.0).

on-request: a request without the `x-api-key` header that the `key` config entry names is
answered 401 at the edge; others go on with `x-checked-by: python` added for the origin.
on-response: adds `x-python-filter: yes` to the response.

The request and the response head are borrowed resources (interface 0.2): the filter asks
for the one header it checks, and nothing else of the request is copied into Python.
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


class OnRequest(exports.OnRequest):
    def handle(self, req: Request) -> RequestAction:
        key = config.get("key")
        given = req.header("x-api-key")
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
