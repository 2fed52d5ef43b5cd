"""The web console's static files: plain ES modules and CSS shipped in the layer, no build step.

Every asset is served under ``/assets/<version>/<file>`` where ``version`` is a digest of all the
static files together. The page (``index.html``, never cached) names that version, so assets can
be cached for a year as immutable: a deploy that changes any file changes every asset URL, and
the modules' relative imports (``./money.js``) resolve inside the same version.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

STATIC = Path(__file__).with_name("static")
INDEX = "index.html"
ASSET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.(js|css|svg)$")
VERSION = re.compile(r"^[0-9a-f]{12}$")
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}
ASSETS_PLACEHOLDER = "{{assets}}"

# No inline script or style anywhere; the page talks only to its own origin. form-action and
# frame-ancestors do not fall back to default-src, so they are named.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# The page's own policy. (nosniff, HSTS and the default no-store go on every response of every
# function, this one's included, from payrail.http.)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # Not no-referrer: under it Chromium sends "Origin: null" on same-origin POSTs, which the
    # API's CSRF guard (rightly) refuses.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"


@dataclass(frozen=True)
class Asset:
    body: str
    content_type: str
    etag: str
    cache_control: str

    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type, "ETag": self.etag, "Cache-Control": self.cache_control, **SECURITY_HEADERS}


def _etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


@cache
def _files() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(STATIC.iterdir()) if path.is_file()}


@cache
def version() -> str:
    """A digest of every static file: changes whenever any of them does."""
    digest = hashlib.sha256()
    for name, content in _files().items():
        digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:12]


@cache
def index() -> Asset:
    html = _files()[INDEX].decode().replace(ASSETS_PLACEHOLDER, f"/assets/{version()}")
    return Asset(html, CONTENT_TYPES[".html"], _etag(html.encode()), NO_CACHE)


def asset(requested_version: str, name: str) -> Asset | None:
    """The asset called ``name``, or None. An old version's URL (a page loaded before a deploy)
    still gets the current file, but revalidated rather than cached as that version's."""
    if not ASSET_NAME.match(name) or not VERSION.match(requested_version):
        return None
    content = _files().get(name)
    if content is None:
        return None
    cache_control = IMMUTABLE if requested_version == version() else NO_CACHE
    return Asset(content.decode(), CONTENT_TYPES[Path(name).suffix], _etag(content), cache_control)


def not_modified(asset: Asset, if_none_match: str | None) -> bool:
    """Whether the browser's cached copy (``If-None-Match``) is still current."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or asset.etag in tags
