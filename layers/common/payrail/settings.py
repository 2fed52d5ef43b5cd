"""Typed settings, read once per function from its environment.

Each function composes its own settings class from the small pieces below and reads it
with :func:`load`, which caches the result; tests set environment variables and call
``load.cache_clear()``.
"""

from __future__ import annotations

from functools import cache
from typing import TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Base(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)


class StageSettings(_Base):
    stage: str = Field(default="dev", alias="STAGE")


class TableSettings(_Base):
    table_name: str = Field(alias="TABLE_NAME", min_length=1)


class PublicUrlSettings(_Base):
    public_base_url: str = Field(default="http://127.0.0.1:3000", alias="PUBLIC_BASE_URL")


S = TypeVar("S", bound=BaseSettings)


@cache
def load[S: BaseSettings](settings_class: type[S]) -> S:
    """The settings of ``settings_class`` from the environment, read once."""
    return settings_class()
