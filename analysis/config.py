"""Configuration at the boundary: every YAML/JSON document is loaded and validated once, here or in
``fileset.loaders`` (the one implementation), and problems are one-line ``ConfigError`` messages."""

from __future__ import annotations

from fileset.errors import ConfigError
from fileset.loaders import load_json, load_yaml, validate

__all__ = ["ConfigError", "load_json", "load_yaml", "validate"]
