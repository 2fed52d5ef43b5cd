"""Write the lock files: every transitive dependency pinned, with the hashes pip checks.

    .venv/bin/python scripts/lock.py            # after changing requirements-dev.txt or layers/common/requirements.txt
    .venv/bin/python scripts/lock.py --check    # exit 1 when a lock no longer matches its requirements

- ``requirements-dev.lock``: the development environment (``make`` installs it with
  ``--require-hashes``), resolved from requirements-dev.txt with the versions already in the
  environment kept (``pip freeze`` as constraints), so locking changes nothing that is installed.
- ``layers/{common,crypto}/requirements.lock``: what each layer ships (its ``Makefile``
  installs it for arm64 with ``--no-deps --require-hashes``), resolved for Lambda's python3.12 on
  arm64 with the development versions as constraints, so the tests run what ships. botocore and
  the packages only it needs are left out: the Lambda runtime has boto3 and botocore (and they
  are half the layer's size otherwise); aws-xray-sdk, which asks for botocore, uses the runtime's.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_IN, DEV_LOCK = ROOT / "requirements-dev.txt", ROOT / "requirements-dev.lock"
LAYERS = ("common", "crypto")
FROM_THE_RUNTIME = {"boto3", "botocore", "s3transfer"}
UV = [sys.executable, "-m", "uv"] if not (Path(sys.executable).parent / "uv").exists() else [str(Path(sys.executable).parent / "uv")]
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)")


def _compile(source: Path, constraints: str, *options: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as constraint_file:
        constraint_file.write(constraints)
        constraint_file.flush()
        command = [*UV, "pip", "compile", str(source.relative_to(ROOT)), "--quiet", "--generate-hashes", "--no-header"]
        command += ["--python-version", "3.12", "--constraint", constraint_file.name, *options]
        return subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout  # noqa: S603


def _blocks(text: str) -> list[tuple[str, list[str]]]:
    """(package name, its lines) for each pinned package of uv's output, without the notes that
    name the temporary constraints file."""
    blocks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if re.match(r"^\s*#( via|  ) -c ", line):
            continue
        match = _PIN.match(line)
        if match:
            blocks.append((match.group(1).lower().replace("_", "-"), [line]))
        elif blocks and line.startswith(" "):
            blocks[-1][1].append(line)
    return blocks


def _without_runtime_packages(text: str) -> list[tuple[str, list[str]]]:
    """The lock's packages minus botocore and those needed only by what is left out."""
    blocks = _blocks(text)
    wanted_by = {name: {via.strip().lstrip("#").strip() for via in _vias(lines)} for name, lines in blocks}
    left_out = set(FROM_THE_RUNTIME)
    changed = True
    while changed:
        changed = False
        for name, vias in wanted_by.items():
            if name not in left_out and vias and all(via in left_out for via in vias):
                left_out.add(name)
                changed = True
    return [(name, lines) for name, lines in blocks if name not in left_out]


def _vias(lines: list[str]) -> list[str]:
    found: list[str] = []
    for line in lines:
        text = line.strip()
        if text.startswith("# via "):
            found.append(text[len("# via ") :])
        elif text.startswith("#   "):
            found.append(text[4:])
    return [via.split(" ")[0].lower() for via in found if via and not via.startswith("-c")]


def _render(header: str, blocks: list[tuple[str, list[str]]]) -> str:
    return header + "".join("\n".join(lines) + "\n" for _, lines in blocks)


def locks() -> dict[Path, str]:
    freeze = [sys.executable, "-m", "pip", "freeze", "--disable-pip-version-check"]
    installed = subprocess.run(freeze, capture_output=True, text=True, check=True)  # noqa: S603 - pip of this interpreter
    # Universal: one lock for Linux CI and developer machines alike (markers say which platform needs what).
    dev = _compile(DEV_IN, installed.stdout, "--universal")
    pins = "".join(lines[0].rstrip(" \\") + "\n" for _, lines in _blocks(dev))
    dev_header = (
        "# The development environment, every package pinned with its hashes. Written by scripts/lock.py\n"
        "# from requirements-dev.txt; make installs it with --require-hashes.\n"
    )
    written = {DEV_LOCK: _render(dev_header, _blocks(dev))}
    for name in LAYERS:
        source = ROOT / "layers" / name / "requirements.txt"
        layer = _compile(source, pins, "--python-platform", "aarch64-manylinux_2_28", "--no-emit-package", "botocore")
        header = (
            f"# The {name} layer's packages for Lambda python3.12 on arm64, pinned with hashes. Written by\n"
            f"# scripts/lock.py from requirements.txt; layers/{name}/Makefile installs exactly these (--no-deps).\n"
            "# Not here: boto3, botocore, s3transfer and what only they need (the Lambda runtime has them).\n"
        )
        written[source.with_suffix(".lock")] = _render(header, _without_runtime_packages(layer))
    return written


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    stale = []
    for path, text in locks().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(ROOT))
        else:
            path.write_text(text)
    for path in stale:
        print(f"{path} does not match its requirements: run .venv/bin/python scripts/lock.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
