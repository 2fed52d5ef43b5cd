"""The size of each layer as Lambda receives it: `make build`, then the zip of each layer's build
output, written the way `sam deploy` packages it (zipfile, deflate at zlib's default level).

    make build && .venv/bin/python bench/layer_size.py
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

BUILD = Path(__file__).resolve().parent.parent / ".aws-sam" / "build"
LAYERS = ("CommonLayer", "CryptoLayer", "SandboxLayer")
LIMIT = 10 * 1024 * 1024


def zipped(folder: Path) -> tuple[int, int]:
    buffer = io.BytesIO()
    unzipped = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
                unzipped += path.stat().st_size
    return len(buffer.getvalue()), unzipped


def measure() -> dict[str, dict[str, float | bool]]:
    """Per layer of the last ``make build``: MB zipped and unzipped, and whether boto3/botocore is in it."""
    sizes: dict[str, dict[str, float | bool]] = {}
    for layer in LAYERS:
        folder = BUILD / layer
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: run make build first")
        size, unzipped = zipped(folder)
        botocore = any((folder / "python" / name).exists() for name in ("botocore", "boto3"))
        sizes[layer] = {"zipped_mb": round(size / 1e6, 2), "unzipped_mb": round(unzipped / 1e6, 2), "botocore": botocore}
    return sizes


def render(sizes: dict[str, dict[str, float | bool]]) -> list[str]:
    lines = [
        "## Layer sizes (target: at most 10 MB zipped each, no boto3 or botocore)",
        "",
        "`make build`, then each layer's build output zipped as `sam deploy` packages it (`bench/layer_size.py`).",
        "",
        "| layer | MB zipped | MB unzipped | boto3 / botocore |",
        "| --- | --- | --- | --- |",
    ]
    for layer, size in sizes.items():
        lines.append(f"| {layer} | {size['zipped_mb']:.2f} | {size['unzipped_mb']:.2f} | {'yes' if size['botocore'] else 'no'} |")
    return [*lines, ""]


def main() -> int:
    try:
        sizes = measure()
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    print("\n".join(render(sizes)))
    over = [layer for layer, size in sizes.items() if float(size["zipped_mb"]) * 1e6 > LIMIT or size["botocore"]]
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
