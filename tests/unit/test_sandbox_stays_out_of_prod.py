"""The sandbox is a stand-in for outside parties: prod deploys none of it and the product never imports it."""

from __future__ import annotations

import ast
from pathlib import Path

from devstack.template import Template
from tests.support import TEMPLATE

ROOT = TEMPLATE.parent
SANDBOX = (ROOT / "sandbox").resolve()
PRODUCT = [ROOT / "layers" / "common", ROOT / "functions"]


def _sandbox_imports(path: Path) -> list[ast.AST]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        if any(name == "payrail_sandbox" or name.startswith("payrail_sandbox.") for name in names):
            found.append(node)
    return found


def _guarded_by_document_sandbox(path: Path, node: ast.AST) -> bool:
    """Whether ``node`` sits inside an ``if`` that tests the ``document_sandbox`` setting."""
    tree = ast.parse(path.read_text(), str(path))
    for branch in ast.walk(tree):
        guarded = isinstance(branch, ast.If) and "document_sandbox" in ast.unparse(branch.test)
        inside = guarded and any(
            getattr(inner, "lineno", None) == getattr(node, "lineno", -1) for stmt in branch.body for inner in ast.walk(stmt)
        )  # type: ignore[attr-defined]
        if inside:
            return True
    return False


def test_the_prod_stage_deploys_no_sandbox_function_layer_or_setting() -> None:
    # Given the template as the prod stage resolves it
    functions = Template(TEMPLATE, {"Stage": "prod"}).functions()
    dev_functions = Template(TEMPLATE, {"Stage": "dev"}).functions()
    # Then no function's code or layers come from sandbox/, and no function is told about a sandbox
    assert functions, "the template has functions"
    for spec in functions.values():
        assert not spec.code_dir.is_relative_to(SANDBOX), spec.logical_id
        assert not any(layer.is_relative_to(SANDBOX) for layer in spec.layer_dirs), spec.logical_id
        assert not any(name.startswith("SANDBOX_") for name in spec.environment), spec.logical_id
    assert functions["ApiDocsFunction"].environment["DOCUMENT_SANDBOX"] == "false"
    # And the layers prod does deploy hold no sandbox package
    for layer in {layer for spec in functions.values() for layer in spec.layer_dirs}:
        assert not list(layer.rglob("payrail_sandbox")), layer
        assert not list(layer.rglob("sandbox*.py")), layer
    # While the dev stage does deploy them (so the check above looks where the sandbox would be)
    assert {"SandboxFunction", "SandboxWebhookSenderFunction"} <= set(dev_functions) - set(functions)
    assert any(layer.is_relative_to(SANDBOX) for layer in dev_functions["ApiDocsFunction"].layer_dirs)


def test_no_product_module_imports_the_sandbox_except_the_dev_only_docs_branch() -> None:
    # Given every module the product deploys on every stage
    offenders = []
    for folder in PRODUCT:
        for path in sorted(folder.rglob("*.py")):
            for node in _sandbox_imports(path):
                # Only the docs function may, inside the branch the dev stage's setting turns on
                allowed = path == ROOT / "functions" / "api_docs" / "app.py" and _guarded_by_document_sandbox(path, node)
                if not allowed:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")  # type: ignore[attr-defined]
    # Then none does
    assert offenders == []
    # And the one allowed import is really there (the walk above sees it)
    assert _sandbox_imports(ROOT / "functions" / "api_docs" / "app.py")
