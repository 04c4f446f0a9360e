"""The base of every config model: unknown keys are errors."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A config mapping: unknown keys are errors, fields may be given by alias."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
