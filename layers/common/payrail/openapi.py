"""One OpenAPI document for the whole API, merged from every API function's own resolver.

Each function describes its routes with its Powertools resolver; this module imports every
``functions/<name>/app.py`` beside the docs function (as Lambda would, under a name of its own
so two ``app`` modules never collide) and merges their paths and schemas. A route added to any
function therefore appears here with no extra work.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

TITLE = "Payrail API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Payouts with real idempotency, OpenID Connect sign-in, signed payment webhooks and bank "
    "transaction sync. Errors are RFC 9457 problem documents."
)


class SchemaConflict(RuntimeError):
    """Two functions describe the same schema name or the same operation differently."""


def _load_resolver(app_file: Path) -> APIGatewayHttpResolver | None:
    spec = importlib.util.spec_from_file_location(f"payrail_docs_{app_file.parent.name}", app_file)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    resolver = getattr(module, "app", None)
    return resolver if isinstance(resolver, APIGatewayHttpResolver) else None


def _merge_into(target: dict[str, Any], addition: dict[str, Any], what: str) -> None:
    for name, value in addition.items():
        if name in target and target[name] != value:
            raise SchemaConflict(f"{what} {name!r} is described differently by two functions")
        target[name] = value


def merged_openapi(functions_root: Path, server_url: str | None = None) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    security_schemes: dict[str, Any] = {}
    for app_file in sorted(functions_root.glob("*/app.py")):
        resolver = _load_resolver(app_file)
        if resolver is None:
            continue
        document = resolver.get_openapi_schema(title=TITLE, version=VERSION).model_dump(mode="json", by_alias=True, exclude_none=True)
        for path, operations in document.get("paths", {}).items():
            _merge_into(paths.setdefault(path, {}), operations, f"operation on {path}:")
        components = document.get("components", {})
        _merge_into(schemas, components.get("schemas", {}), "schema")
        _merge_into(security_schemes, components.get("securitySchemes", {}), "security scheme")
    document = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items()))},
    }
    if security_schemes:
        document["components"]["securitySchemes"] = security_schemes
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document


def swagger_page(document: dict[str, Any]) -> str:
    """Swagger UI over ``document``, with its script and styles inline (Powertools ships them) so
    it works offline."""
    # Powertools keeps its Swagger UI renderer and assets in a private-ish module; they are the
    # same files its own enable_swagger() serves, reused here for the merged document.
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import html

    assets = Path(html.__file__).parent
    js = (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    css = (assets / "swagger-ui.min.css").read_text(encoding="utf-8")
    return html.generate_swagger_html(json.dumps(document), js, css, "", None)
