from functools import cache
from pathlib import Path

from aws_lambda_powertools.event_handler import Response
from payrail.http import api_handler, create_app, json_response
from payrail.openapi import merged_openapi, swagger_page
from payrail.settings import PublicUrlSettings, load

FUNCTIONS_ROOT = Path(__file__).resolve().parent.parent

app = create_app()


@cache
def document() -> dict:
    return merged_openapi(FUNCTIONS_ROOT, server_url=load(PublicUrlSettings).public_base_url)


@app.get("/openapi.json", summary="The OpenAPI document of every route", tags=["Operations"], include_in_schema=False)
def openapi_json() -> Response[dict]:
    return json_response(document(), headers={"Cache-Control": "public, max-age=300"})


@app.get("/docs", summary="Swagger UI over /openapi.json", tags=["Operations"], include_in_schema=False)
def docs() -> Response[str]:
    return Response(200, "text/html; charset=utf-8", swagger_page(document()), headers={"Cache-Control": "public, max-age=300"})


@api_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
