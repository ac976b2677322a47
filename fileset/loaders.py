"""The project's one YAML/JSON loader and document validation; every problem is a one-line ``ConfigError``.

Used at every boundary where a document enters (samples.yml, fileset json, cabinetry/search/reweighting/
cluster configs): read once, validate once, report every problem with its path. The project's own documents are
pydantic models (:func:`validate_model`; the fileset layer's are in :mod:`fileset.models`); :func:`validate`
(JSON schema) is for schemas the project does not own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fileset.errors import ConfigError


def load_yaml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Read a YAML mapping.

    Args:
        path: file path.
        what: noun used in messages (``"config file"``, ``"samples file"``).
    Returns:
        The top-level mapping.
    Raises:
        ConfigError: missing file, YAML syntax error (with line), or a top level that is not a mapping.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: {what} not found")
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: expected a YAML mapping at top level, got {type(doc).__name__}")
    return doc


def load_json(path: str | Path, what: str = "JSON file") -> Any:
    """Read a JSON document.

    Raises:
        ConfigError: missing file, or not valid JSON (with line and column).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: {what} not found")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{p}: not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file") from None


def validate(doc: Any, schema: dict[str, Any], source: str) -> None:
    """Validate ``doc`` against a JSON schema (draft 2020-12).

    Raises:
        ConfigError: one message listing every problem with its key path, prefixed by ``source``.
    """
    problems = schema_problems(doc, schema)
    if problems:
        raise ConfigError(f"{source}: invalid config: " + "; ".join(problems))


def schema_problems(doc: Any, schema: dict[str, Any]) -> list[str]:
    """Every violation of a JSON schema (draft 2020-12) as ``"key/path: message"``, ordered by key path.

    For callers that add their own cross-field problems before reporting all of them together.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(str(p) for p in err.absolute_path) or '<top>'}: {err.message}" for err in errors]


def validate_model(doc: Any, model: Any, source: str) -> None:
    """Validate ``doc`` against a pydantic model (the document itself is left as it is).

    Args:
        doc: the parsed document.
        model: a pydantic ``BaseModel``/``RootModel`` subclass.
        source: the file (named first in the message).
    Raises:
        ConfigError: ``<source>: invalid config: <key/path>: <problem>; ...`` — every problem, one line.
    """
    from pydantic import ValidationError

    try:
        model.model_validate(doc)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            # drop pydantic's union-member tags ("list[...]", "dict[...]") from the key path
            loc = [str(x) for x in e["loc"] if not (isinstance(x, str) and x.endswith("]") and "[" in x
                                                     and x.split("[", 1)[0] in ("list", "dict", "function-after"))]
            if e["type"] == "extra_forbidden":
                key = loc.pop() if loc else "?"
                where, msg = "/".join(loc), f"unknown key ({key!r} was unexpected)"
            elif e["type"] == "missing":
                key = loc.pop() if loc else "?"
                where, msg = "/".join(loc), f"{key!r} is required"
            else:
                where, msg = "/".join(loc), e["msg"]
                if not isinstance(e.get("input"), (dict, list)):
                    msg += f" (got {e['input']!r})"
            problems.append(f"{where or '<top>'}: {msg}")
        raise ConfigError(f"{source}: invalid config: " + "; ".join(dict.fromkeys(problems))) from None
