"""template.yaml as ``sam deploy`` would send it for one samconfig.toml environment, checked offline.

What CloudFormation would only say during a deploy (or what would deploy and then not work), said
here first:

- the SAM transform (samtranslator, through :mod:`devstack.cloudformation`) accepts the template
  with the environment's parameter values;
- every value fits its parameter (AllowedValues, AllowedPattern, MinValue / MaxValue);
- the Rules hold (a failed assertion is what refuses the change set);
- every ``Ref`` / ``Fn::GetAtt`` / ``Fn::Sub`` names a parameter, a pseudo parameter or a resource
  that this environment creates, and the resources do not depend on each other in a cycle;
- no function's environment and no CORS origin of a deployed stack points at a loopback address
  (the local runtime's defaults leaking into AWS).

Conditions are evaluated with the environment's values, so an ``Fn::If`` branch that is not taken
is not followed, as CloudFormation does not create what it names.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from devstack.cloudformation import expand
from devstack.template import Template, TemplateError, load_yaml, parse_overrides

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
PSEUDO = {
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
}
_SUB_NAME = re.compile(r"\$\{([^}!][^}]*)\}")
_URL_HOST = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(\[[^\]]*\]|[^/:?#\s,\"']+)")
_BARE_HOST = re.compile(r"^(localhost|[0-9.]+|\[[0-9a-fA-F:]+\])(:[0-9]+)?(/.*)?$")


@dataclass
class Report:
    environment: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# -------------------------------------------------------------------- samconfig.toml
def deploy_environments(samconfig: Path = SAMCONFIG) -> list[str]:
    """Every environment samconfig.toml gives a ``deploy`` section."""
    config = tomllib.loads(samconfig.read_text(encoding="utf-8"))
    return [name for name, section in config.items() if isinstance(section, dict) and "deploy" in section]


def deploy_config(environment: str, samconfig: Path = SAMCONFIG) -> dict[str, Any]:
    config = tomllib.loads(samconfig.read_text(encoding="utf-8"))
    parameters: dict[str, Any] = config.get(environment, {}).get("deploy", {}).get("parameters", {})
    return parameters


def deploy_parameters(environment: str, extra: Mapping[str, str] | None = None, samconfig: Path = SAMCONFIG) -> dict[str, str]:
    """The parameter values ``sam deploy --config-env environment`` sends: samconfig's overrides,
    then ``extra`` (the deployer's own, e.g. ``make deploy PARAMS=...``). Nothing of the local
    runtime's defaults: what is not given is the template's default."""
    overrides = deploy_config(environment, samconfig).get("parameter_overrides", "")
    text = overrides if isinstance(overrides, str) else " ".join(overrides)
    return {**parse_overrides(text), **(extra or {})}


# -------------------------------------------------------------------- the check
def check_file(environment: str, extra: Mapping[str, str] | None = None, template: Path = TEMPLATE, samconfig: Path = SAMCONFIG) -> Report:
    return check(load_yaml(template), deploy_parameters(environment, extra, samconfig), environment, template)


def check(document: Mapping[str, Any], parameters: Mapping[str, str], environment: str = "", path: Path = TEMPLATE) -> Report:
    """Expand ``document`` with ``parameters`` as CloudFormation's SAM transform would, then check it."""
    report = Report(environment)
    report.problems += parameter_problems(document, parameters)
    if report.problems:
        return report
    try:
        expanded = expand(document, parameters, region(environment))
    except TemplateError as error:
        report.problems.append(f"the SAM transform refuses the template: {error}")
        return report
    report.problems += check_expanded(expanded, parameters, path)
    return report


def region(environment: str) -> str:
    if not environment:
        return "us-east-1"
    return str(deploy_config(environment).get("region") or "us-east-1")


def check_expanded(expanded: Mapping[str, Any], parameters: Mapping[str, str], path: Path = TEMPLATE) -> list[str]:
    """The problems of an already expanded template (plain CloudFormation) with ``parameters``."""
    try:
        template = _evaluating(copy.deepcopy(dict(expanded)), parameters, path)
        problems = rule_failures(template)
        problems += reference_problems(template)
        problems += loopback_problems(template)
    except TemplateError as error:
        return [f"the template cannot be evaluated: {error}"]
    return problems


def parameter_problems(document: Mapping[str, Any], parameters: Mapping[str, str]) -> list[str]:
    declared: Mapping[str, Any] = document.get("Parameters") or {}
    problems = [f"parameter {name} is given but the template declares no such parameter" for name in parameters if name not in declared]
    for name, spec in declared.items():
        if name not in parameters and "Default" not in spec:
            problems.append(f"parameter {name} has no default and no value")
            continue
        value = str(parameters.get(name, spec.get("Default")))
        allowed = spec.get("AllowedValues")
        if allowed and value not in [str(a) for a in allowed]:
            problems.append(f"parameter {name}={value!r} is not one of {allowed}")
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            problems.append(f"parameter {name}={value!r} does not match its AllowedPattern {pattern}")
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                problems.append(f"parameter {name}={value!r} is not a number")
                continue
            if "MinValue" in spec and number < float(spec["MinValue"]):
                problems.append(f"parameter {name}={value} is below its MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                problems.append(f"parameter {name}={value} is above its MaxValue {spec['MaxValue']}")
    return problems


def _evaluating(expanded: dict[str, Any], parameters: Mapping[str, str], path: Path) -> Template:
    """The expanded template with the parameters' values; Ref and GetAtt of a resource stay
    recognisable placeholders (``<Ref Name>``, ``<Name.Attr>``), as their values exist only on AWS."""
    template = Template(path, parameters, stack_name="payrail-deploy-check", document=expanded)
    template.resolve_ref = lambda name: f"<Ref {name}>"
    template.resolve_getatt = lambda name, attribute: f"<{name}.{attribute}>"
    return template


def rule_failures(template: Template) -> list[str]:
    """Each assertion of each Rule whose condition holds and whose assertion does not."""
    failures = []
    for name, rule in (template.document.get("Rules") or {}).items():
        if "RuleCondition" in rule and not template.resolve(rule["RuleCondition"]):
            continue
        for assertion in rule.get("Assertions") or []:
            if not template.resolve(assertion["Assert"]):
                failures.append(f"rule {name}: {assertion.get('AssertDescription', 'an assertion fails')}")
    return failures


# -------------------------------------------------------------------- references and cycles
def references(template: Template, value: Any) -> Iterator[str]:
    """The names ``value`` references (Ref, GetAtt, Sub), following only the taken Fn::If branches."""
    if isinstance(value, list):
        for item in value:
            yield from references(template, item)
        return
    if not isinstance(value, dict):
        return
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref" and isinstance(argument, str):
            yield argument
            return
        if key == "Fn::GetAtt":
            target = argument[0] if isinstance(argument, list) else str(argument).split(".", 1)[0]
            yield from references(template, target) if isinstance(target, dict) else iter([str(target)])
            return
        if key == "Fn::Sub":
            text, variables = (argument[0], argument[1]) if isinstance(argument, list) else (argument, {})
            yield from references(template, variables)
            for name in _SUB_NAME.findall(text):
                if name not in variables:
                    yield name.split(".", 1)[0] if "." in name and not name.startswith("AWS::") else name
            return
        if key == "Fn::If":
            condition, when_true, when_false = argument
            yield from references(template, when_true if template.condition(condition) else when_false)
            return
    for item in value.values():
        yield from references(template, item)


def reference_problems(template: Template) -> list[str]:
    problems: list[str] = []
    resources = template.resources
    enabled = {name for name in resources if template.is_enabled(name)}
    graph: dict[str, set[str]] = {}

    def target(owner: str, name: str) -> str | None:
        if name in PSEUDO or name in template.parameters:
            return None
        if name not in resources:
            problems.append(f"{owner} references {name}, which is neither a parameter nor a resource")
        elif name not in enabled:
            problems.append(f"{owner} references {name}, which this environment does not create (its condition is false)")
        else:
            return name
        return None

    for name in sorted(enabled):
        resource = resources[name]
        depends = resource.get("DependsOn") or []
        names = [*references(template, resource.get("Properties") or {}), *([depends] if isinstance(depends, str) else depends)]
        graph[name] = {found for found in (target(name, ref) for ref in names) if found}
    for output, spec in (template.document.get("Outputs") or {}).items():
        if spec.get("Condition") is None or template.condition(spec["Condition"]):
            for ref in references(template, spec.get("Value")):
                target(f"output {output}", ref)
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        cycle = error.args[1]
        problems.append("dependency cycle: " + " -> ".join(reversed(cycle)))
    return problems


# -------------------------------------------------------------------- loopback addresses
def loopback_problems(template: Template) -> list[str]:
    """Every function environment value and CORS origin of the deployed stack that names a
    loopback (or unspecified) address: on AWS nothing is listening there."""
    problems = []
    for name in sorted(template.resources):
        resource = template.resources[name]
        if not template.is_enabled(name):
            continue
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Lambda::Function":
            variables = template.resolve((properties.get("Environment") or {}).get("Variables") or {})
            for variable, value in sorted(variables.items()):
                if is_loopback(value):
                    problems.append(f"{name} environment {variable}={value!r} points at a loopback address")
        if resource.get("Type") == "AWS::ApiGatewayV2::Api":
            origins = _cors_origins(template, properties)
            problems += [f"{name} CORS origin {origin!r} is a loopback address" for origin in origins if is_loopback(origin)]
    return problems


def _cors_origins(template: Template, properties: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for cors in ((properties.get("Body") or {}).get("x-amazon-apigateway-cors"), properties.get("CorsConfiguration")):
        resolved = template.resolve(cors) if cors else {}
        origins: Any = resolved.get("allowOrigins", resolved.get("AllowOrigins")) if isinstance(resolved, dict) else None
        listed: list[Any] = [origins] if isinstance(origins, str) else list(origins or [])
        found += [part.strip() for origin in listed for part in str(origin).split(",")]
    return [origin for origin in found if origin]


def is_loopback(value: Any) -> bool:
    text = str(value)
    hosts = _URL_HOST.findall(text)
    for part in text.split(","):
        bare = _BARE_HOST.match(part.strip())
        if bare:
            hosts.append(bare.group(1))
    return any(_loopback_host(host) for host in hosts)


def _loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
