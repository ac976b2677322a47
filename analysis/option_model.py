"""The base of every option set: a frozen pydantic model, validated once at the boundary with one-line errors.

An option set (``ana demo``'s :class:`analysis.agc.demo.DemoOptions`, ``ana search``'s
:class:`analysis.resonance.search_config.SearchConfig`, ``ana reweight``'s
:class:`analysis.reweighting.config.ReweightConfig`, ``ana ml train``'s :class:`analysis.ml.options.TrainOptions`) is
defined once, as a subclass of :class:`OptionModel`: field names, types, bounds and defaults. The Python API
builds it with :meth:`OptionModel.make` (None = not given → the model's default), the CLI with
:meth:`OptionModel.from_args` (flags named like the fields, with dashes; no type or default in argparse), a YAML
file with :meth:`OptionModel.make` and ``source=`` its path. Every problem is reported together in one line
(:class:`analysis.errors.AnalysisError`, or :class:`analysis.errors.ConfigError` for a file), which the CLI turns
into exit code 2. NaN and ±inf are refused for every float; unknown names are errors.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, ClassVar, Mapping, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from analysis.errors import AnalysisError, ConfigError

__all__ = ["OptionModel", "validation_problems"]

M = TypeVar("M", bound="OptionModel")


def _flag(name: str) -> str:
    """CLI spelling of a field name."""
    return "--" + name.replace("_", "-")


def validation_problems(err: ValidationError, *, cli: bool = False) -> str:
    """pydantic's errors in the project's one-line style: ``option: message (got value); ...``.

    Args:
        err: the validation error.
        cli: name top-level options as CLI flags (``--files-per-sample``) instead of field names.
    """
    out = []
    for e in err.errors():
        loc = [str(x) for x in e["loc"]]
        where = "/".join(loc)
        if cli and len(loc) == 1:
            where = _flag(loc[0])
        if e["type"] == "extra_forbidden":
            msg = "unknown option"
        elif e["type"] == "missing":
            msg = "missing"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if "input" in e and not isinstance(e["input"], (dict, list)) and e["type"] != "value_error":
                msg += f" (got {e['input']!r})"
        out.append(f"{where}: {msg}" if where else msg)
    return "; ".join(dict.fromkeys(out))


class OptionModel(BaseModel):
    """An option set: frozen, unknown names forbidden, floats finite. Subclasses set ``WHAT`` (for messages)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    WHAT: ClassVar[str] = "options"

    @classmethod
    def make(cls: type[M], values: Mapping[str, Any] | None = None, *, source: str | Path | None = None,
             cli: bool = False, context: dict[str, Any] | None = None, **overrides: Any) -> M:
        """Validated options from a mapping and keyword overrides (None values count as not given).

        Args:
            values: option name → value (e.g. a YAML document).
            source: the file the values came from (named in the error, which is then a ConfigError).
            cli: name options as CLI flags in errors.
            context: passed to the validators (e.g. the directory relative paths are resolved against).
            overrides: further options; None = not given.

        Raises:
            AnalysisError: ``invalid <what>: <every problem>`` in one line (ConfigError with ``source``).
        """
        merged = {**dict(values or {}), **{k: v for k, v in overrides.items() if v is not None}}
        try:
            return cls.model_validate(merged, context=context)
        except ValidationError as err:
            problems = validation_problems(err, cli=cli)
            if source is not None:
                raise ConfigError(f"{source}: invalid {cls.WHAT}: {problems}") from None
            raise AnalysisError(f"invalid {cls.WHAT}: {problems}") from None

    @classmethod
    def from_args(cls: type[M], args: argparse.Namespace, **extra: Any) -> M:
        """The options given on the command line (attributes named like the fields; None = not given).

        Raises:
            AnalysisError: one line naming every offending flag.
        """
        values = {name: getattr(args, name) for name in cls.model_fields if getattr(args, name, None) is not None}
        return cls.make(values, cli=True, **extra)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values of every option."""
        return self.model_dump(mode="json")
