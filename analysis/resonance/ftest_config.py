"""Step 0 of ``ana ftest``: its options, defined once (:class:`FTestConfig`), from CLI flags and/or a YAML file.

:func:`make_config` merges a YAML config with explicit options and validates once; every problem comes back in one
line naming the option (exit 2 in the CLI). Validates only: nothing is read or written besides the YAML.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analysis.config import load_yaml
from analysis.errors import AnalysisError, ConfigError, UserError
from analysis.execution.options import EXECUTORS
from analysis.resonance.families import DEFAULT_FAMILIES, canonical_family

__all__ = ["MIN_EVENTS_DEFAULT", "FTestConfig", "SignalSpec", "category_name", "make_config"]

MIN_EVENTS_DEFAULT = 20.0


def category_name(value: Any) -> str:
    """Category label from a column value: integral floats lose their '.0'."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode()
    return str(value)



class SignalSpec(BaseModel):
    """Illustrative signal for the s+b plot: mass and width [GeV], expected events."""

    model_config = ConfigDict(extra="forbid")

    mass_gev: float | None = None
    width_gev: float | None = Field(None, gt=0)
    events: float | None = Field(None, ge=0)


class FTestConfig(BaseModel):
    """All options of ``ana ftest``, defined once: CLI flags (same names with dashes) or the same keys in a YAML
    config; validated here (types, bounds, cross-field rules) with one-line errors naming the option."""

    model_config = ConfigDict(extra="forbid")

    input: str
    observable: str
    tree: str | None = None
    unit: str = "GeV"
    category_column: str | None = None
    categories: Literal["auto"] | list[str] = "auto"
    range: tuple[float, float] | None = None
    blind: tuple[float, float] | None = None
    weight_column: str | None = None
    bins: int | None = Field(None, ge=3)
    executor: Literal[EXECUTORS] = "futures"
    workers: int | None = Field(None, ge=1)
    pseudodata: bool = False
    seed: int = Field(0, ge=0)
    keep_going: bool = False
    families: list[str] = Field(default_factory=lambda: list(DEFAULT_FAMILIES), min_length=1)
    pvalue_threshold: float = Field(0.05, gt=0, lt=1)
    envelope_threshold: float = Field(0.1, gt=0, lt=1)
    gof_threshold: float = Field(0.01, ge=0, lt=1)
    correction: float = Field(1.0, ge=0)
    max_order: int | None = Field(None, ge=1)
    n_toys: int = Field(1000, ge=10)
    min_events: float = Field(MIN_EVENTS_DEFAULT, ge=1)
    ftest_2d: list[str] | None = Field(None, min_length=2, max_length=2)
    signal: SignalSpec | None = None

    @field_validator("categories", mode="before")
    @classmethod
    def _category_names(cls, value: Any) -> Any:
        """Category values may be numbers in YAML; names are strings (``1.0`` → ``"1"``)."""
        return [category_name(c) for c in value] if isinstance(value, (list, tuple)) else value

    @field_validator("range", "blind")
    @classmethod
    def _window(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        """Two finite numbers LO < HI."""
        if value is not None and not (math.isfinite(value[0]) and math.isfinite(value[1]) and value[0] < value[1]):
            raise ValueError(f"{[float(v) for v in value]}: need two finite numbers LO < HI")
        return value

    @field_validator("families", "ftest_2d")
    @classmethod
    def _families(cls, value: list[str] | None) -> list[str] | None:
        """Canonical family names (aliases resolved; unknown names rejected)."""
        if value is None:
            return None
        try:
            return [canonical_family(f) for f in value]
        except UserError as err:
            raise ValueError(str(err)) from None

    @model_validator(mode="after")
    def _together(self) -> "FTestConfig":
        """Cross-field rules."""
        if self.range is not None and self.blind is not None and not (self.range[0] < self.blind[0] and self.blind[1] < self.range[1]):
            raise ValueError(f"blind window {list(self.blind)} must lie strictly inside the range {list(self.range)}")
        if self.categories != "auto" and not self.category_column:
            raise ValueError("explicit categories need a category column (--category-column)")
        return self


def _problems(err: ValidationError) -> str:
    """pydantic errors in the project's one-line style (``option: message; ...``)."""
    out = []
    for e in err.errors():
        where = "/".join(str(x) for x in e["loc"] if not isinstance(x, int) or len(e["loc"]) == 1)
        msg = "unknown option" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = f"missing (--{where.replace('_', '-')} or '{where}:' in the config)"
        out.append((f"{where} {msg}" if msg.startswith("[") else f"{where}: {msg}") if where else msg)
    return "; ".join(dict.fromkeys(out))


def make_config(options: dict[str, Any], config_path: str | Path | None = None) -> FTestConfig:
    """Merge a YAML config with explicit options (options win; None = not given) and validate once.

    Raises:
        ConfigError: the YAML cannot be read or has invalid keys/values (named with the file).
        AnalysisError: invalid options (every problem in one line).
    """
    doc: dict[str, Any] = {}
    if config_path is not None:
        doc = load_yaml(config_path)
        try:
            FTestConfig.model_validate({"input": "-", "observable": "-", **doc})
        except ValidationError as err:
            raise ConfigError(f"{config_path}: invalid config: {_problems(err)}") from None
        if "input" in doc and not Path(doc["input"]).is_absolute():
            doc["input"] = str(Path(config_path).resolve().parent / doc["input"])
    merged = {**doc, **{k: v for k, v in options.items() if v is not None}}
    try:
        return FTestConfig.model_validate(merged)
    except ValidationError as err:
        raise AnalysisError(f"invalid ftest options: {_problems(err)}") from None

