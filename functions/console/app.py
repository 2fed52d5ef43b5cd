from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from payrail import console
from payrail.errors import NotFound
from payrail.http import api_handler, create_app

app = create_app()
TAGS = ["Console"]


def _served(asset: console.Asset) -> Response[str]:
    if console.not_modified(asset, (app.current_event.headers or {}).get("if-none-match")):
        return Response(304, None, "", headers={k: v for k, v in asset.headers().items() if k != "Content-Type"})
    return Response(200, asset.content_type, asset.body, headers=asset.headers())


@app.get("/", summary="The web console (a single page; revalidated on every load)", tags=TAGS, responses={200: {"description": "HTML"}})
def index() -> Response[str]:
    return _served(console.index())


@app.get(
    "/assets/<version>/<name>",
    summary="The console's scripts and styles (immutable under their version)",
    tags=TAGS,
    responses={200: {"description": "The file"}, 304: {"description": "Not modified"}, 404: {"description": "No such file"}},
)
def asset(version: Annotated[str, Path(max_length=64)], name: Annotated[str, Path(max_length=80)]) -> Response[str]:
    found = console.asset(version, name)
    if found is None:
        raise NotFound("No such console file.")
    return _served(found)


@api_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
