"""The sign-in flow for end-to-end tests (it lives in scenarios/, which the demo shares)."""

from scenarios.signin import BINDING_COOKIE, Flow, finish, sign_in, sign_in_tokens, start

__all__ = ["BINDING_COOKIE", "Flow", "finish", "sign_in", "sign_in_tokens", "start"]
