import json
from functools import cache
from pathlib import Path

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from payrail.http import api_handler, create_app, methods_by_path, unrouted
from payrail.openapi import merged_openapi, swagger_page
from payrail.settings import DocsSettings, Once

FUNCTIONS_ROOT = Path(__file__).resolve().parent.parent

app = create_app()
settings = Once(DocsSettings)


def document() -> dict:
    # The server URL is the public one, which a stack without a custom domain learns per request.
    return _document(settings().public_base_url)


@cache
def _document(server_url: str) -> dict:
    extra = []
    if settings().document_sandbox:
        # The dev stage's sandbox, from its own layer (prod deploys neither the layer nor this branch's use).
        from payrail_sandbox.api import resolver

        extra.append(resolver())
    return merged_openapi(FUNCTIONS_ROOT, server_url=server_url, extra=extra)


# Both answers are built once per server URL, like the document: the page inlines Swagger UI's
# script and styles (~1.5 MB read from the layer), which cost 30 ms a request when built each time.
@cache
def _document_text(server_url: str) -> str:
    return json.dumps(_document(server_url))


@cache
def _page(server_url: str) -> str:
    return swagger_page(_document(server_url))


@app.get("/openapi.json", summary="The OpenAPI document of every route", tags=["Operations"], include_in_schema=False)
def openapi_json() -> Response[str]:
    text = _document_text(settings().public_base_url)
    return Response(200, "application/json", text, headers={"Cache-Control": "public, max-age=300"})


@app.get("/docs", summary="Swagger UI over /openapi.json", tags=["Operations"], include_in_schema=False)
def docs() -> Response[str]:
    return Response(200, "text/html; charset=utf-8", _page(settings().public_base_url), headers={"Cache-Control": "public, max-age=300"})


@cache
def every_route() -> dict[str, list[str]]:
    return methods_by_path(document()["paths"])


# This function is also API Gateway's $default route, which takes every request no other route
# matches: a wrong method on a real path gets 405 with Allow, anything else a 404 problem.
@app.not_found
def unmatched(_: NotFoundError) -> Response:
    event = app.current_event
    return unrouted(event.request_context.http.method, event.path, every_route())


@api_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
