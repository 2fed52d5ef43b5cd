"""What the tests share: one moto server, the template's resources built in it from
template.yaml itself, and functions loaded in-process with exactly their template environment."""

from __future__ import annotations

import functools
import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from payrail.settings import Settings

from devstack import iam
from devstack.functions import function_environment
from devstack.inprocess import LocalContext, load_module
from devstack.policies import identities
from devstack.resources import Provisioner
from devstack.stack import template_parameters
from devstack.template import FunctionSpec, Template
from scenarios.waiting import wait_for  # noqa: F401 - the tests import it from here

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"


def reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(endpoint + "/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


class Resources:
    """The template's resources, freshly created in moto."""

    def __init__(
        self,
        endpoint: str,
        template_path: Path = TEMPLATE,
        overrides: dict[str, str] | None = None,
        document: dict[str, Any] | None = None,
        source: str | None = None,
    ) -> None:
        """``document``: another template (e.g. an edited copy) read as if it were at ``template_path``;
        ``source`` then names it in the IAM coverage records, apart from template.yaml's."""
        reset_moto(endpoint)
        self.endpoint = endpoint
        self.template = Template(template_path, template_parameters(template_path, "dev", overrides or {}), document=document)
        self.provisioner = Provisioner(self.template, endpoint, "http://127.0.0.1:3000")
        self.provisioner.provision_all()
        self.functions: dict[str, FunctionSpec] = self.template.functions()
        # Each function's role, resolved against these resources: its handler's AWS calls are
        # authorised against it (devstack.iam), as the local stack does in each function's process.
        self.identities: dict[str, iam.Identity] = identities(self.template, source=source)

    def ref(self, logical_id: str) -> str:
        return self.provisioner.ref(logical_id)

    def client(self, service: str) -> Any:
        return self.provisioner.client(service)

    def point_at(self, monkeypatch: Any, **variables: str) -> None:
        """Point the shared package, used outside any function, at these resources (plus ``variables``)."""
        local = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
        }
        for name, value in {**local, **variables}.items():
            monkeypatch.setenv(name, value)
        clear_caches()

    def environment(self, logical_id: str) -> dict[str, str]:
        return function_environment(self.functions[logical_id], self.ref(logical_id), self.endpoint)

    def settings[S: Settings](self, logical_id: str, settings_class: type[S], **changes: Any) -> S:
        """``settings_class`` as the function ``logical_id`` would read it from its template
        environment, with ``changes`` (by field name) on top."""
        settings = settings_class.model_validate(self.environment(logical_id))
        return settings.model_copy(update=changes) if changes else settings


def clear_caches() -> None:
    """Forget the secrets and AWS clients cached by the shared package (a new environment may
    point at another endpoint or name other secrets)."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    module = sys.modules.get("payrail.aws")
    if module is not None:
        module.session.cache_clear()
        module.client.cache_clear()


@contextmanager
def function_environment_of(resources: Resources, *logical_ids: str) -> Iterator[dict[str, str]]:
    """os.environ set to exactly the function's environment for the duration; with several
    functions (run together in one process), their environments merged, the first one's winning."""
    saved = dict(os.environ)
    os.environ.clear()
    for logical_id in reversed(logical_ids):
        os.environ.update(resources.environment(logical_id))
    clear_caches()
    try:
        yield dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        clear_caches()


def load_function(resources: Resources, logical_id: str) -> ModuleType:
    """Import a function's handler module under a name of its own, as Lambda would load it, with
    its ``lambda_handler`` (and the import itself) running as the function's IAM role."""
    identity = resources.identities[logical_id]
    with iam.acting_as(identity):
        module = load_module(resources.functions[logical_id].handler_file, f"fn_{logical_id}")
    module.lambda_handler = enforced(identity, module.lambda_handler)  # type: ignore[attr-defined]
    return module


def enforced(identity: iam.Identity, handler: Any) -> Any:
    """``handler`` with every AWS call it makes authorised as ``identity``."""

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        with iam.acting_as(identity):
            return handler(event, context)

    return run


class LambdaContext(LocalContext):
    def __init__(self) -> None:
        super().__init__("test", 10_000)


def context_of(resources: Resources, logical_id: str, remaining_ms: int | None = None) -> LocalContext:
    """The context Lambda gives the function: its whole template timeout left, or ``remaining_ms``."""
    timeout_ms = resources.functions[logical_id].timeout * 1000
    return LocalContext(logical_id, timeout_ms if remaining_ms is None else remaining_ms)


def load_event(name: str, **changes: Any) -> dict[str, Any]:
    """An event from events/, with top-level keys replaced."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    event.update(changes)
    return event
