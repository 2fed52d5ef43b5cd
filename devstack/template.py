"""Reading template.yaml the way CloudFormation and SAM would, for the local runtime.

The template is the only list of resources, functions, routes and event sources: everything the
local runtime serves or creates is derived here from it. Intrinsic functions are resolved against
a ``resolve_ref`` / ``resolve_getatt`` pair that the stack provides (local physical ids).
"""

from __future__ import annotations

import copy
import functools
import re
import shlex
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


class TemplateError(Exception):
    """The template cannot be read or uses something the local runtime cannot evaluate."""


class _NoValue:
    """``AWS::NoValue``: the property it stands for is removed."""


NO_VALUE = _NoValue()


# -------------------------------------------------------------------- YAML with CloudFormation tags
# libyaml's parser where PyYAML was built with it (its wheels are): the pure-Python one takes about
# half a second for template.yaml, which every test's fresh resources and every start read.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_SafeLoader):
    """PyYAML's safe loader plus CloudFormation's short-form tags (``!Ref``, ``!Sub``...), which it
    turns into their long form. A few lines of our own instead of importing the SAM CLI, which
    takes seconds to import, for a function the runtime needs on every start."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path) -> dict[str, Any]:
    """``path``'s document, parsed once per version of the file; each caller gets its own copy."""
    try:
        stat = path.stat()
    except FileNotFoundError as error:
        raise TemplateError(f"{path} does not exist") from error
    return copy.deepcopy(_parsed(path.resolve(), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=32)
def _parsed(path: Path, _mtime_ns: int, _size: int) -> dict[str, Any]:
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError as error:
        raise TemplateError(f"{path} does not exist") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise TemplateError(f"{path} is not valid YAML: {reason}{where}") from error
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    return document


# -------------------------------------------------------------------- samconfig parameters
def samconfig_parameters(path: Path, environment: str) -> dict[str, str]:
    """The ``parameter_overrides`` samconfig.toml gives ``environment`` (deploy section first)."""
    if not path.exists():
        return {}
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    env = config.get(environment, {})
    for command in ("deploy", "global"):
        overrides = env.get(command, {}).get("parameters", {}).get("parameter_overrides")
        if overrides:
            return parse_overrides(overrides if isinstance(overrides, str) else " ".join(overrides))
    return {}


def parse_overrides(text: str) -> dict[str, str]:
    """``Key=Value Other="a b"`` (sam's form) as a dict; ``ParameterKey=..,ParameterValue=..`` too."""
    result: dict[str, str] = {}
    for token in shlex.split(text):
        if token.startswith("ParameterKey="):
            parts = dict(part.split("=", 1) for part in token.split(",", 1))
            result[parts["ParameterKey"]] = parts.get("ParameterValue", "")
        elif "=" in token:
            key, value = token.split("=", 1)
            result[key] = value
        else:
            raise TemplateError(f"parameter override {token!r} is not Key=Value")
    return result


# -------------------------------------------------------------------- the model
@dataclass
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    runtime: str
    timeout: int
    memory: int
    environment: dict[str, str]
    layer_dirs: list[Path]
    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def handler_file(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.code_dir / (module + ".py")

    def events_of(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: event["Properties"] for name, event in self.events.items() if event.get("Type") == kind}


def merge_globals(global_section: Mapping[str, Any], local: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (local wins), lists concatenate (globals first), scalars override."""
    merged: dict[str, Any] = dict(global_section)
    for key, value in local.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict):
            merged[key] = merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = base + value
        else:
            merged[key] = value
    return merged


class Template:
    def __init__(
        self,
        path: Path,
        parameter_overrides: Mapping[str, str] | None = None,
        stack_name: str = "payrail-local",
        document: dict[str, Any] | None = None,
    ) -> None:
        """``path``'s template, or ``document`` (e.g. its SAM expansion) read as if it were at ``path``."""
        self.path = path.resolve()
        self.root = self.path.parent
        self.document = document if document is not None else load_yaml(self.path)
        self.resources: dict[str, dict[str, Any]] = self.document["Resources"]
        self.stack_name = stack_name
        self.parameters = self._parameters(parameter_overrides or {})
        self._conditions: dict[str, bool] = {}
        self.resolve_ref: Callable[[str], Any] = lambda name: name
        self.resolve_getatt: Callable[[str, str], Any] = lambda name, attr: f"{name}.{attr}"

    # ---------------------------------------------------------------- parameters and conditions
    def _parameters(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        declared = self.document.get("Parameters") or {}
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in overrides:
                value: Any = overrides[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no default and no value was given")
            allowed = spec.get("AllowedValues")
            if allowed and str(value) not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = [part.strip() for part in value.split(",")] if value else []
            values[name] = value
        return values

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.document.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"condition {name} is not defined")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def is_enabled(self, logical_id: str) -> bool:
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def enabled_resources(self, *types: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if (not types or resource.get("Type") in types) and self.is_enabled(logical_id)
        }

    # ---------------------------------------------------------------- intrinsics
    def pseudo(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{self.stack_name}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name not in pseudo:
            raise TemplateError(f"pseudo parameter {name} is not supported locally")
        return pseudo[name]

    def _ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.resolve_ref(name)
        raise TemplateError(f"!Ref {name}: no such parameter or resource")

    def _sub(self, value: Any) -> str:
        if isinstance(value, list):
            text, variables = value[0], {k: self.resolve(v) for k, v in value[1].items()}
        else:
            text, variables = value, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                resource, attribute = name.split(".", 1)
                return str(self.resolve_getatt(resource, attribute))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function evaluated; ``AWS::NoValue`` entries removed."""
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Condition":
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:
        if name == "GetAtt":
            resource, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.resolve_getatt(self.resolve(resource), self.resolve(attribute))
        if name == "Sub":
            return self._sub(argument)
        if name == "Join":
            delimiter, items = argument
            return str(delimiter).join(str(item) for item in self.resolve(items))
        if name == "Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if name == "Split":
            delimiter, text = argument
            return str(self.resolve(text)).split(delimiter)
        if name == "If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false)
        if name == "Equals":
            left, right = (self.resolve(a) for a in argument)
            return str(left) == str(right)
        if name == "Not":
            return not self.resolve(argument[0])
        if name == "And":
            return all(self.resolve(a) for a in argument)
        if name == "Or":
            return any(self.resolve(a) for a in argument)
        if name == "FindInMap":
            mapping, first, second = (self.resolve(a) for a in argument)
            return self.document["Mappings"][mapping][first][second]
        if name == "Base64":
            import base64

            return base64.b64encode(str(self.resolve(argument)).encode()).decode()
        if name == "GetAZs":
            return [f"{REGION}{zone}" for zone in "abc"]
        raise TemplateError(f"Fn::{name} is not supported by the local runtime")

    # ---------------------------------------------------------------- functions
    def functions(self) -> dict[str, FunctionSpec]:
        """Every enabled ``AWS::Serverless::Function`` with Globals applied and intrinsics resolved."""
        global_function = (self.document.get("Globals") or {}).get("Function") or {}
        specs: dict[str, FunctionSpec] = {}
        for logical_id, resource in self.enabled_resources("AWS::Serverless::Function").items():
            properties = self.resolve(merge_globals(global_function, resource.get("Properties") or {}))
            code_uri = properties.get("CodeUri")
            handler = properties.get("Handler")
            if not isinstance(code_uri, str) or not handler:
                raise TemplateError(f"{logical_id} needs a local CodeUri and a Handler")
            variables = (properties.get("Environment") or {}).get("Variables") or {}
            specs[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_dir=(self.root / code_uri).resolve(),
                handler=handler,
                runtime=properties.get("Runtime", "python3.12"),
                timeout=int(properties.get("Timeout", 3)),
                memory=int(properties.get("MemorySize", 128)),
                environment={name: _env_string(value) for name, value in variables.items()},
                layer_dirs=[self._layer_dir(layer) for layer in properties.get("Layers") or []],
                events=properties.get("Events") or {},
            )
        return specs

    def _layer_dir(self, layer: Any) -> Path:
        for logical_id, resource in self.resources.items():
            if resource.get("Type") == "AWS::Serverless::LayerVersion" and layer == self.resolve_ref(logical_id):
                return (self.root / resource["Properties"]["ContentUri"]).resolve()
        raise TemplateError(f"layer {layer!r} is not a local AWS::Serverless::LayerVersion")


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
