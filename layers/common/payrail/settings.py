"""Typed settings, read once per function from its environment.

Each function composes its own settings class from the small pieces below and reads it
with :func:`load`, which caches the result; tests set environment variables and call
``load.cache_clear()``.
"""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """A settings piece: fields name their environment variables by alias.

    Plain pydantic validating ``os.environ`` once is all a function needs; pydantic-settings
    would add dotenv files and nested sources, and about 80 ms to every cold start."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class StageSettings(Settings):
    stage: str = Field(default="dev", alias="STAGE")


class TableSettings(Settings):
    table_name: str = Field(alias="TABLE_NAME", min_length=1)


class PublicUrlSettings(Settings):
    public_base_url: str = Field(default="http://127.0.0.1:3000", alias="PUBLIC_BASE_URL")


@cache
def load[S: BaseModel](settings_class: type[S]) -> S:
    """The settings of ``settings_class`` from the environment, read once."""
    return settings_class.model_validate(dict(os.environ))
