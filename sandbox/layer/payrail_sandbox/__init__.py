"""The sandbox providers (dev stage and local only): an OpenID Connect identity provider, a
payment provider and a bank, each a Powertools router mounted by the sandbox function. Their
state lives in the table under ``SANDBOX#`` keys, so they survive restarts."""
