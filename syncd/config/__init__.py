"""Configuration: YAML with positions, interpolation, validation and the JSON Schema."""

from syncd.config.loader import load_config
from syncd.config.model import Config

__all__ = ["Config", "load_config"]
