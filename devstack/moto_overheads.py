"""Work moto's server does that answers nothing, removed for the local runtime and the tests.

* **An RSA key pair for every KMS key.** moto 5 gives each key it creates, symmetric ones
  included, a freshly generated RSA-2048 private key (``moto.kms.models.Key.__init__`` calls
  ``generate_private_key(key_spec)``, whose fallback for ``SYMMETRIC_DEFAULT`` and the HMAC specs is
  RSA-2048). Only Sign, Verify and GetPublicKey ever read it; the template's keys are all
  symmetric, yet each ``CreateKey`` spent 0.2-0.8 s of CPU on the pair, and the tests build the
  template's resources (three keys) afresh for most tests. Here a key whose spec is not an RSA or
  ECC one gets the same pair when it is first used instead, so moto answers those calls on it
  exactly as before; RSA and ECC keys still get theirs on creation.
* **A directory listing for every request.** moto's server asks, for each request, whether the
  Host header names one of its service modules by listing its package directory and testing
  each of its ~160 entries with ``os.path.isdir`` (``moto.backends.list_of_moto_modules``):
  about 1.3 ms of CPU per AWS call, paid by every call any function or test makes. The package
  does not change while the process runs, so the listing is made once.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any

_ASYMMETRIC_PREFIXES = ("RSA_", "ECC_", "SM2")


class DeferredPrivateKey:
    """moto's private key object for one key, generated on its first use."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._key: Any = None
        self._lock = threading.Lock()

    def resolved(self) -> Any:
        with self._lock:
            if self._key is None:
                self._key = self._make()
            return self._key

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_make", "_key", "_lock"):
            raise AttributeError(name)  # copy and pickle probe dunders; a half-built proxy has no fields
        return getattr(self.resolved(), name)


def _defer_symmetric_key_pairs() -> None:
    from moto.kms import models

    original = models.generate_private_key
    if getattr(original, "_payrail_deferred", False):
        return

    def generate_private_key(key_spec: str) -> Any:
        if str(key_spec).startswith(_ASYMMETRIC_PREFIXES):
            return original(key_spec)
        return DeferredPrivateKey(lambda: original(key_spec))

    generate_private_key._payrail_deferred = True  # type: ignore[attr-defined]
    models.generate_private_key = generate_private_key


def _list_service_modules_once() -> None:
    from moto import backends

    original = backends.list_of_moto_modules
    if getattr(original, "_payrail_listed_once", False):
        return

    @functools.cache
    def listed() -> tuple[str, ...]:
        return tuple(original())

    def list_of_moto_modules() -> Iterable[str]:
        return listed()

    list_of_moto_modules._payrail_listed_once = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules


def trim_moto_overheads() -> None:
    """Patch moto in this process (idempotent): both changes above."""
    _defer_symmetric_key_pairs()
    _list_service_modules_once()
