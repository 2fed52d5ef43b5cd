from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from payrail import console
from payrail.errors import NotFound
from payrail.http import api_handler, create_app, problems

app = create_app()
TAGS = ["Console"]
TEXT = {"schema": {"type": "string"}}


def _served(asset: console.Asset) -> Response[str]:
    if console.not_modified(asset, (app.current_event.headers or {}).get("if-none-match")):
        return Response(304, None, "", headers={k: v for k, v in asset.headers().items() if k != "Content-Type"})
    return Response(200, asset.content_type, asset.body, headers=asset.headers())


@app.get(
    "/",
    summary="The web console (a single page; revalidated on every load)",
    tags=TAGS,
    responses={200: {"description": "The page", "content": {"text/html": TEXT}}, 304: {"description": "Not modified (If-None-Match)"}},
)
def index() -> Response[str]:
    return _served(console.index())


@app.get(
    "/assets/<version>/<name>",
    summary="The console's scripts and styles (immutable under their version)",
    tags=TAGS,
    responses={
        200: {"description": "The file", "content": {"text/javascript": TEXT, "text/css": TEXT, "image/svg+xml": TEXT}},
        304: {"description": "Not modified (If-None-Match)"},
        **problems({404: "No such file"}),
    },
)
def asset(version: Annotated[str, Path(max_length=64)], name: Annotated[str, Path(max_length=80)]) -> Response[str]:
    found = console.asset(version, name)
    if found is None:
        raise NotFound("No such console file.")
    return _served(found)


@api_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
