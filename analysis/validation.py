"""Config validation at the boundary: JSON-schema checks that report every problem with its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from analysis.errors import AnalysisError


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, turning missing files and syntax errors into one-line user errors."""
    p = Path(path)
    if not p.is_file():
        raise AnalysisError(f"{p}: config file not found")
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise AnalysisError(f"{p}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if not isinstance(doc, dict):
        raise AnalysisError(f"{p}: expected a YAML mapping at top level, got {type(doc).__name__}")
    return doc


def validate(doc: Any, schema: dict[str, Any], source: str) -> None:
    """Validate ``doc`` against ``schema``; raise one AnalysisError listing every problem with its path."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return
    problems = []
    for err in errors:
        where = "/".join(str(p) for p in err.absolute_path) or "<top>"
        problems.append(f"{where}: {err.message}")
    raise AnalysisError(f"{source}: invalid config: " + "; ".join(problems))
