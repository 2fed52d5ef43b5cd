"""Bytecode for what a cold start imports, in the output of sam build.

    .venv/bin/python scripts/bytecode.py .aws-sam/build

Lambda's code directories are read-only, so a module shipped without bytecode is compiled again
on every cold start that imports it. The functions' own code and the sandbox layer are small and
are compiled whole. The third-party layers are not: bytecode for all of them would add about 4 MB
to the zips, mostly for modules no function imports (Powertools utilities, pydantic.v1, most of
cryptography's Python side). So each function's handler module is imported in a fresh
interpreter, as a cold start does, and the layers' modules that any of them loaded are compiled.
What a request imports later is compiled on first use.
``unchecked-hash`` bytecode stays valid whatever the zip does to mtimes.
"""

from __future__ import annotations

import compileall
import json
import os
import py_compile
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.stack import template_parameters  # noqa: E402
from devstack.template import Template  # noqa: E402

COMMON = ROOT / "layers" / "common"
THIRD_PARTY_LAYERS = ("CommonLayer", "CryptoLayer")
_TRACE = """
import importlib.util, json, sys
code_dir, handler, *layers = sys.argv[1:]
sys.path[:0] = [code_dir, *layers]
spec = importlib.util.spec_from_file_location("app", handler)
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps([m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)]))
"""


def imported_at_cold_start() -> set[str]:
    """Paths, relative to a layer's python/ folder, of the layer modules any handler imports."""
    template = Template(ROOT / "template.yaml", template_parameters(ROOT / "template.yaml", "dev", {}))
    roots = [Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["platlib"]), COMMON]
    found: set[str] = set()
    environment = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "payrail"}
    for spec in template.functions().values():
        arguments = [str(spec.code_dir), str(spec.handler_file), *(str(layer) for layer in spec.layer_dirs)]
        output = subprocess.run(  # noqa: S603 - this interpreter, our own trace
            [sys.executable, "-I", "-c", _TRACE, *arguments], env=environment, capture_output=True, text=True, check=True
        ).stdout
        for name in json.loads(output):
            path = Path(name)
            for root in roots:
                if path.is_relative_to(root) and path.suffix == ".py":
                    found.add(str(path.relative_to(root)))
    return found


def main(build: Path) -> int:
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    for folder in sorted(path for path in build.iterdir() if path.is_dir() and path.name not in THIRD_PARTY_LAYERS):
        if not compileall.compile_dir(folder, quiet=1, workers=0, invalidation_mode=mode):
            return 1
    compiled = 0
    imported = sorted(imported_at_cold_start())
    for layer in THIRD_PARTY_LAYERS:
        for relative in imported:
            source = build / layer / "python" / relative
            if source.exists():
                py_compile.compile(str(source), doraise=True, invalidation_mode=mode)
                compiled += 1
    print(f"bytecode: every function and the sandbox layer, and the {compiled} layer modules that cold starts import")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
