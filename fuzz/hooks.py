"""Schemathesis hooks for the API fuzz run (schemathesis.toml names this module).

JSON Schema judges numbers by value, so ``852.0`` is a valid ``integer`` to it. The API judges
amounts by how they are written and refuses a number with a decimal point: API.md says floats are
rejected, and a client that sends them is mishandling money. No schema can say that, so those
values are not offered to the fuzzer as valid input; 852.5 and the like still are, as invalid.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def filter_body(context: schemathesis.HookContext, body: Any) -> bool:
    amount = body.get("amount") if isinstance(body, dict) else None
    return not (isinstance(amount, float) and amount.is_integer())
