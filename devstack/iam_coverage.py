"""Least privilege, proven by a test run: every permission template.yaml grants was used, none was missing.

``make test`` runs the suite with ``DEVSTACK_IAM_USAGE`` set, so every function's role (in-process
handlers and the local stack's function processes alike) records which grant allowed each AWS
call and which calls were denied (``devstack.iam``). This check reads those records and fails when

* a call by one of template.yaml's functions was denied: its policy is too narrow, which on AWS
  would fail only after a deploy; or
* an element of a function's own policies (an action, a resource, a condition value) allowed
  nothing in the whole run: it is wider than what the code does. An element the code does not
  call on purpose is named, with the reason, under ``Metadata: PayrailIam: NotCalledByCode``
  (by Sid, by action pattern, or as ``policy:<PolicyName>`` for a whole policy SAM generates,
  such as an on-failure destination's, which Lambda uses with the role and the code never
  does), and is then reported but not failed.

AWS managed policies (``AWSLambdaBasicExecutionRole`` and the like) are AWS's to scope and are
not checked. Usage: ``python -m devstack.iam_coverage FOLDER [--template template.yaml]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.iam import _action_pattern, grants_of, statements_of
from devstack.policies import identities, not_called_by_code
from devstack.stack import template_parameters
from devstack.template import Template


@dataclass
class Finding:
    denied: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    explained: list[str] = field(default_factory=list)
    grants: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.denied or self.unused)


def _records(folder: Path) -> Iterable[Mapping[str, Any]]:
    for path in sorted(folder.glob("*.json")):
        yield from json.loads(path.read_text())


def _describe(policies: list[dict[str, Any]], grant: str) -> str:
    """``policy#3:Action:1`` as the element it names, e.g. ``dynamodb:Query`` or ``PAYOUT#*``."""
    head, element, *rest = grant.split(":", 2)
    name, _, index = head.rpartition("#")
    policy = next(p for p in policies if p["name"] == name)
    statement = statements_of(policy["document"])[int(index)]
    if element in ("Action", "Resource"):
        values = statement[element]
        value = (values if isinstance(values, list) else [values])[int(rest[0])]
    else:  # the id is built as grants_of builds it (operators and keys hold colons themselves)
        value = next(
            f"{operator} {key} {item}"
            for operator, keys in statement["Condition"].items()
            for key, values in keys.items()
            for position, item in enumerate(values if isinstance(values, list) else [values])
            if f"{operator}:{key}:{position}" == rest[0]
        )
    sid = statement.get("Sid")
    return f"{element} {value}" + (f" (Sid {sid})" if sid else "")


def _explanation(statement: Mapping[str, Any], reasons: Mapping[str, str]) -> str | None:
    sid = str(statement.get("Sid", ""))
    if sid and sid in reasons:
        return reasons[sid]
    actions = statement.get("Action", [])
    for action in actions if isinstance(actions, list) else [actions]:
        for pattern, reason in reasons.items():
            if _action_pattern(pattern).fullmatch(str(action)):
                return reason
    return None


def check(folder: Path, template_path: Path) -> dict[str, Finding]:
    template = Template(template_path, template_parameters(template_path, "dev", {}))
    source = str(template.path)
    used: dict[str, Counter[str]] = {}
    denied: dict[str, list[str]] = {}
    for record in _records(folder):
        if record.get("source") != source:
            continue  # another template's functions (the runtime's own test fixtures)
        function = str(record["function"])
        used.setdefault(function, Counter()).update(record.get("used", {}))
        if record.get("denied_calls"):
            denied.setdefault(function, []).extend(
                f"{d.get('action')} on {d.get('resource')}" for d in record.get("denied", []) or [{"action": "?", "resource": "?"}]
            )
    findings: dict[str, Finding] = {}
    for function, identity in identities(template).items():
        own = [p for p in identity.policies if not p.get("managed")]
        reasons = not_called_by_code(template, function)
        finding = Finding(denied=sorted(set(denied.get(function, []))))
        grants = grants_of(own)
        finding.grants = len(grants)
        for grant in sorted(grants):
            if used.get(function, Counter())[grant]:
                continue
            name, _, index = grant.split(":", 1)[0].rpartition("#")
            statement = statements_of(next(p for p in own if p["name"] == name)["document"])[int(index)]
            # A policy SAM writes itself (an on-failure destination's) is named by its policy name.
            reason = reasons.get(f"policy:{name}") or _explanation(statement, reasons)
            line = _describe(own, grant)
            if reason:
                finding.explained.append(f"{line}: {reason}")
            else:
                finding.unused.append(line)
        findings[function] = finding
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the DEVSTACK_IAM_USAGE folder of a test run")
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    args = parser.parse_args(argv)
    if not args.folder.is_dir() or not any(args.folder.glob("*.json")):
        print(f"iam coverage: no usage records in {args.folder} (run the suite with DEVSTACK_IAM_USAGE set)", file=sys.stderr)
        return 2
    findings = check(args.folder, args.template)
    for function, finding in sorted(findings.items()):
        for line in finding.denied:
            print(f"iam coverage: {function}: DENIED {line}: its policy is narrower than its code")
        for line in finding.unused:
            print(f"iam coverage: {function}: UNUSED {line}: wider than its code (remove it, or name it under NotCalledByCode)")
        for line in finding.explained:
            print(f"iam coverage: {function}: not called by code, {line}")
    grants = sum(f.grants for f in findings.values())
    failed = [name for name, finding in findings.items() if finding.failed]
    print(
        f"iam coverage: {len(findings)} functions, {grants} policy elements;"
        f" {sum(len(f.denied) for f in findings.values())} denied, {sum(len(f.unused) for f in findings.values())} unused"
        + (f" (in {', '.join(sorted(failed))})" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
