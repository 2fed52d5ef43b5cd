"""The layers ship exactly their lock files: every package pinned with hashes, the versions the
tests run, no boto3 or botocore (the runtime's), and cryptography only where it is used."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from devstack.stack import template_parameters
from devstack.template import Template, load_yaml
from tests.support import ROOT, TEMPLATE

LAYERS = {"CommonLayer": ROOT / "layers/common", "CryptoLayer": ROOT / "layers/crypto"}
DEV_LOCK = ROOT / "requirements-dev.lock"
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)")


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for every package of a lock file."""
    packages: dict[str, tuple[str, int]] = {}
    name = ""
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            name = match.group(1).lower().replace("_", "-")
            packages[name] = (match.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = packages[name]
            packages[name] = (version, hashes + 1)
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"{path.name}: {line!r} is neither a pin nor a hash")
    return packages


def top_level_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            pins[match.group(1).lower().replace("_", "-").split("[")[0]] = match.group(2)
        elif "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.split("[")[0].lower().replace("_", "-")] = version.strip()
    return pins


@pytest.mark.parametrize(
    "lock", [DEV_LOCK, *(folder / "requirements.lock" for folder in LAYERS.values())], ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_package_of_a_lock_is_pinned_with_hashes(lock: Path) -> None:
    packages = locked(lock)
    assert packages
    assert [name for name, (_, hashes) in packages.items() if hashes == 0] == []


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_ships_no_boto3_or_botocore_and_the_versions_the_tests_run(layer: str) -> None:
    layer_lock = locked(LAYERS[layer] / "requirements.lock")
    development = locked(DEV_LOCK)
    assert {"boto3", "botocore", "s3transfer"} & set(layer_lock) == set()
    assert {name: version for name, (version, _) in layer_lock.items() if development[name][0] != version} == {}
    # And every requirement the layer states is in its lock at that version
    for name, version in top_level_pins(LAYERS[layer] / "requirements.txt").items():
        assert layer_lock[name][0] == version, name
        assert development[name][0] == version, name


def test_the_development_lock_holds_every_development_pin() -> None:
    development = locked(DEV_LOCK)
    for name, version in top_level_pins(ROOT / "requirements-dev.txt").items():
        assert development[name][0] == version, name


@pytest.mark.parametrize("layer", LAYERS)
def test_sam_build_installs_the_layer_from_its_lock_only(layer: str) -> None:
    resource = load_yaml(TEMPLATE)["Resources"][layer]
    assert resource["Metadata"]["BuildMethod"] == "makefile"
    recipe = (LAYERS[layer] / "Makefile").read_text()
    assert f"build-{layer}:" in recipe
    for option in ("--no-deps", "--require-hashes", "--only-binary=:all:", "--platform manylinux2014_aarch64", "-r requirements.lock"):
        assert option in recipe


def _imports_closure(handler: Path, roots: list[Path]) -> set[Path]:
    """The handler file and every module of ours it imports, directly or not."""
    seen: set[Path] = set()
    pending = [handler]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names += [f"{node.module}.{alias.name}" for alias in node.names]
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            for name in names:
                for root in roots:
                    base = root.joinpath(*name.split("."))
                    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                        if candidate.exists():
                            pending.append(candidate)
    return seen


def _needs_cryptography(path: Path) -> bool:
    text = path.read_text()
    return bool(re.search(r"^\s*(from|import) cryptography", text, re.M)) or '"RS256"' in text


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("dev", {"AuthFunction", "BankApiFunction", "BankSyncWorkerFunction", "SandboxFunction", "ApiDocsFunction"}),
        ("prod", {"AuthFunction", "BankApiFunction", "BankSyncWorkerFunction"}),
    ],
)
def test_exactly_the_functions_that_use_cryptography_get_its_layer(stage: str, expected: set[str]) -> None:
    # A function uses it when a module it can import (its code, its layers) imports cryptography or
    # names RS256 (PyJWT needs cryptography for it); the dev API docs import the sandbox's provider.
    template = Template(TEMPLATE, {**template_parameters(TEMPLATE, "dev", {}), "Stage": stage})
    needs, has = set(), set()
    for logical_id, spec in template.functions().items():
        roots = [spec.code_dir, *spec.layer_dirs]
        if any(_needs_cryptography(path) for path in _imports_closure(spec.handler_file, roots)):
            needs.add(logical_id)
        if LAYERS["CryptoLayer"].resolve() in spec.layer_dirs:
            has.add(logical_id)
    assert needs == expected
    assert has == needs
