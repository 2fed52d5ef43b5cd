"""Every sample event under events/ does what the README's table says (issue 19 item 12).

Each file is invoked the way ``make invoke`` does it with ``make run`` up: ``python -m devstack
invoke <Function> -e <file>`` in the running stack's folder, so it uses that stack's resources."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r'^\| `(events/[^`]+)` \| `(\w+)` \| `([^`]+)`(?: "([^"]+)")?')


@dataclass(frozen=True)
class Documented:
    event: str
    function: str
    answer: str  # an HTTP status, "N failed" (SQS batch), or "summary" (a schedule)
    says: str | None  # a phrase the answer's body contains


def _documented() -> dict[str, Documented]:
    rows = (ROW.match(line) for line in (ROOT / "README.md").read_text().splitlines())
    return {m[1]: Documented(m[1], m[2], m[3], m[4]) for m in rows if m}


def _invoke(stack: RunningStack, row: Documented) -> Any:
    command = [
        sys.executable,
        "-m",
        "devstack",
        "--template",
        str(ROOT / "template.yaml"),
        "invoke",
        row.function,
        "-e",
        str(ROOT / row.event),
    ]
    done = subprocess.run(
        command, cwd=stack.workdir, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_every_sample_event_is_documented_with_its_function() -> None:
    files = {str(path.relative_to(ROOT)) for path in (ROOT / "events").rglob("*.json")}
    documented = _documented()
    assert set(documented) == files
    for row in documented.values():
        folder = Path(row.event).parent.name
        assert row.function == "".join(part.capitalize() for part in folder.split("_")) + "Function", row


def test_every_sample_event_answers_what_the_readme_says(stack: RunningStack) -> None:
    documented = sorted(_documented().values(), key=lambda row: row.event)
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = dict(zip((row.event for row in documented), pool.map(lambda row: _invoke(stack, row), documented), strict=True))
    wrong = {}
    for row in documented:
        answer = answers[row.event]
        if row.answer.isdigit():
            got, body = str(answer.get("statusCode")), str(answer.get("body", ""))
        elif row.answer.endswith(" failed"):
            got, body = f"{len(answer.get('batchItemFailures', []))} failed", json.dumps(answer)
        else:
            got, body = ("summary" if isinstance(answer, dict) and "statusCode" not in answer else repr(answer)), json.dumps(answer)
        if got != row.answer or (row.says and row.says not in body):
            wrong[row.event] = (row.answer, row.says, got, body[:300])
    assert not wrong, json.dumps(wrong, indent=2)
