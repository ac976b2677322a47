"""Your own analysis on the same machinery: any coffea ``ProcessorABC`` from your module, any fileset json.

``run_user_processor("my_module:MyProcessor", "fileset.json", "out")`` (and ``ana run --processor …``)
loads the processor (an importable module or a path to a ``.py`` file), the fileset (AGC-style or
coffea-style json, see ``fileset.build.load_fileset``) and the NanoEvents schema, runs it with the whole
reliability layer (pre-flight, retries, skip-and-account, checkpoints, any executor; the module is shipped
to Dask workers) and writes ``OUT/histograms.root`` (every ``hist.Hist`` of the output, category axes split
into keys: ``analysis.histio.output_histograms``), ``OUT/output.coffea`` (``coffea.util.save``; read it back
with ``coffea.util.load``) and ``OUT/metrics.json``.

Errors in the user's code (import, constructor, ``process``) are user errors: one line naming the processor,
the chunk and the innermost line of the user's file, exit 2 in the CLI.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coffea import processor

from analysis.errors import AnalysisError, UserError
from analysis.execution.options import RunOptions
from analysis.execution.retries import is_read_error

__all__ = ["SCHEMAS", "UserRun", "load_object", "load_processor", "parse_processor_options", "resolve_schema",
           "run_user_processor", "write_run_outputs"]

SCHEMAS = ("auto", "nanoaod", "agc", "base")


def _one_line(err: BaseException) -> str:
    """The first line of an exception's message (pybind11/numba errors run over many lines)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _option_type_problems(cls: type, options: dict[str, Any]) -> list[str]:
    """Options whose value cannot be what the constructor expects, judged by the annotation (``int``, ``float``,
    ``bool``, ``str``) or else by the default's type: ``bins='abc'`` for ``bins: int = 12``."""
    import typing

    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to the defaults
        hints = {}
    params = inspect.signature(cls).parameters
    problems = []
    for key, value in options.items():
        param = params.get(key)
        if param is None:
            continue
        expected = hints.get(key)
        if expected not in (int, float, bool, str):
            default = param.default
            expected = type(default) if isinstance(default, (int, float, bool, str)) else None
        if expected is None:
            continue
        ok = (isinstance(value, bool) if expected is bool
              else isinstance(value, int) and not isinstance(value, bool) if expected is int
              else isinstance(value, (int, float)) and not isinstance(value, bool) if expected is float
              else isinstance(value, str))
        if not ok:
            problems.append(f"--processor-option {key}={value!r}: expected {expected.__name__}")
    return problems


def _where(err: BaseException, user_file: str | None = None) -> str:
    """``file:line`` of the innermost frame of ``user_file`` (else the innermost frame) in an exception's traceback.

    Code pickled by value (a processor loaded from a path) runs as ``<dynamic-code>``; it is the user's file.
    """
    frames = traceback.extract_tb(err.__traceback__)
    if user_file:
        target = str(Path(user_file).resolve())
        mine = [f for f in frames if f.filename == "<dynamic-code>" or str(Path(f.filename).resolve()) == target]
        if mine:
            return f"{Path(user_file).name}:{mine[-1].lineno}"
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"


def _import_module(name_or_path: str) -> Any:
    """Import a module by name, or a ``.py`` file by path (registered under its stem)."""
    looks_like_path = name_or_path.endswith(".py") or "/" in name_or_path or "\\" in name_or_path
    if not looks_like_path:
        try:
            return importlib.import_module(name_or_path)
        except ModuleNotFoundError as err:
            if err.name is not None and name_or_path.startswith(err.name):
                raise AnalysisError(f"cannot import module {name_or_path!r}: {err} (a module on the Python path, "
                                    "or a path to a .py file)") from None
            raise AnalysisError(f"cannot import module {name_or_path!r}: {err}") from None
        except UserError:
            raise
        except Exception as err:
            raise AnalysisError(f"importing {name_or_path!r} failed: {type(err).__name__}: {err} "
                                f"({_where(err)})") from None
    path = Path(name_or_path).resolve()
    if not path.is_file() or path.suffix != ".py":
        raise AnalysisError(f"{name_or_path}: no such Python file")
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None:
        if getattr(existing, "__file__", None) and Path(existing.__file__).resolve() == path:
            return existing
        raise AnalysisError(f"{name_or_path}: a module named {name!r} is already imported from "
                            f"{getattr(existing, '__file__', 'built-in')}; rename the file")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise AnalysisError(f"importing {name_or_path} failed: {type(err).__name__}: {err} ({_where(err)})") from None
    # worker processes (futures: loky) cannot import a file by path: its classes travel by value
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return module


def load_object(spec: str, what: str = "processor") -> tuple[Any, str]:
    """``module:Name`` or ``path/to/file.py:Name`` → (the object, the module's name).

    Raises:
        AnalysisError: malformed spec, module not importable, or no such name (one line).
    """
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr.isidentifier():
        raise AnalysisError(f"{what} {spec!r}: expected MODULE:CLASS (e.g. my_module:MyProcessor or path/to/file.py:MyProcessor)")
    module = _import_module(module_part)
    if not hasattr(module, attr):
        raise AnalysisError(f"{what} {spec!r}: module {module.__name__!r} has no attribute {attr!r}")
    return getattr(module, attr), module.__name__


def parse_processor_options(items: list[str] | None) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` → keyword arguments; values are read as YAML scalars/lists (``3``, ``0.5``, ``true``, ``[a, b]``)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise AnalysisError(f"processor option {item!r}: expected KEY=VALUE with KEY a Python identifier")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def load_processor(spec: str, options: dict[str, Any] | None = None) -> tuple[processor.ProcessorABC, str]:
    """Instantiate the user's processor class ``spec`` (``module:Class``) with ``options`` as keyword arguments.

    Returns:
        (the processor instance, its module's name).
    Raises:
        AnalysisError: bad spec, not a ``ProcessorABC`` subclass, options the constructor does not take, or
            the constructor raising (one line with the user's file and line).
    """
    options = dict(options or {})
    cls, module_name = load_object(spec, "processor")
    if not (inspect.isclass(cls) and issubclass(cls, processor.ProcessorABC)):
        kind = type(cls).__name__ if not inspect.isclass(cls) else "class not derived from ProcessorABC"
        raise AnalysisError(f"processor {spec!r} is not a coffea ProcessorABC subclass ({kind})")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise AnalysisError(f"processor {spec!r} does not implement {missing}")
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as err:
        raise AnalysisError(f"processor {spec!r}: options {sorted(options)} do not fit {cls.__name__}"
                            f"{inspect.signature(cls)}: {err}") from None
    problems = _option_type_problems(cls, options)
    if problems:
        raise AnalysisError(f"processor {spec!r}: " + "; ".join(problems) + f" ({cls.__name__}{inspect.signature(cls)})")
    try:
        return cls(**options), module_name
    except UserError:
        raise
    except Exception as err:
        raise AnalysisError(f"processor {spec!r}: constructor failed: {type(err).__name__}: {_one_line(err)} "
                            f"({_where(err)})") from None


def resolve_schema(spec: str | None, fileset: dict[str, dict[str, Any]], kind: str) -> tuple[type, str | None]:
    """NanoEvents schema class for ``spec`` and the module to ship with it (None for built-in schemas).

    ``spec``: ``auto`` (default: an AGC-style json's format — ntuple → AGCSchema, nanoaod → AGCNanoAODSchema;
    a coffea-style json → NanoAODSchema if every tree is ``Events``, else BaseSchema), ``nanoaod`` (coffea's
    NanoAODSchema), ``agc`` (flat AGC ntuples), ``base`` (coffea's BaseSchema) or ``module:Class``.
    """
    from coffea.nanoevents import BaseSchema, NanoAODSchema

    from schemas.agc import AGCSchema

    spec = spec or "auto"
    if spec == "auto":
        if kind == "agc":
            from analysis.execution.runner import schema_for

            return schema_for(fileset), None
        trees = {s["treename"] for s in fileset.values()}
        return (NanoAODSchema if trees == {"Events"} else BaseSchema), None
    named = {"nanoaod": NanoAODSchema, "agc": AGCSchema, "base": BaseSchema}
    if spec in named:
        return named[spec], None
    if ":" not in spec:
        raise AnalysisError(f"schema {spec!r}: choose from {', '.join(SCHEMAS)} or give MODULE:CLASS")
    cls, module_name = load_object(spec, "schema")
    if not (inspect.isclass(cls) and issubclass(cls, BaseSchema)):
        raise AnalysisError(f"schema {spec!r} is not a coffea.nanoevents BaseSchema subclass")
    return cls, module_name


class _UserCodeErrors(processor.ProcessorABC):
    """Runs the user's processor; its exceptions (not input read errors) become one-line user errors.

    Read errors pass through unchanged so that retries and skip-and-account treat them as input problems.
    """

    def __init__(self, inner: processor.ProcessorABC, label: str) -> None:
        self.inner, self.label = inner, label
        try:
            self.user_file = inspect.getsourcefile(type(inner))
        except TypeError:
            self.user_file = None

    def process(self, events):
        """The user's ``process``, with its failures named."""
        try:
            return self.inner.process(events)
        except UserError:
            raise
        except Exception as err:
            if is_read_error(err):
                raise
            meta = getattr(events, "metadata", {}) or {}
            where = _where(err, self.user_file)
            raise AnalysisError(f"processor {self.label} failed on {meta.get('filename', '?')} entries "
                                f"{meta.get('entrystart', '?')}-{meta.get('entrystop', '?')}: "
                                f"{type(err).__name__}: {_one_line(err)} ({where})") from None

    def postprocess(self, accumulator):
        """The user's ``postprocess``."""
        return self.inner.postprocess(accumulator)


@dataclass
class UserRun:
    """A run of the user's processor: the post-processed output, metrics and where it was written."""

    output: Any
    metrics: dict[str, Any]
    fileset: dict[str, dict[str, Any]]
    output_dir: Path | None = None
    histogram_keys: list[str] | None = None


def run_user_processor(processor_spec: str | processor.ProcessorABC, fileset_json: str | Path,
                       out_dir: str | Path | None = None, *, schema: str | None = None,
                       processor_options: dict[str, Any] | None = None,
                       options: RunOptions | dict[str, Any] | None = None, max_files: int = -1,
                       samples_config: str | Path | None = None, input_format: str | None = None,
                       **run_options: Any) -> UserRun:
    """Run your own processor over a fileset json with the whole reliability layer; write outputs if ``out_dir``.

    Args:
        processor_spec: ``module:Class`` / ``path/to/file.py:Class`` (instantiated with ``processor_options``)
            or a processor instance.
        fileset_json: AGC-style (``fileset.build.build_fileset``; ``max_files``, ``samples_config``,
            ``input_format`` apply) or coffea-style json (``fileset.build.load_coffea_fileset``).
        out_dir: where ``histograms.root``, ``output.coffea`` and ``metrics.json`` go (None: nothing written).
        schema: see :func:`resolve_schema`.
        options / run_options: :class:`RunOptions` (executor, workers, scheduler, cluster, chunksize, ...).
    Returns:
        :class:`UserRun`.
    Raises:
        AnalysisError / ConfigError / FilesetError: every configuration problem together, before any work;
            unreadable inputs; the user's processor failing (one line each).
    """
    from fileset.build import load_fileset

    problems: list[str] = []
    opts = proc = fileset = schema_cls = None
    ship: list[str] = []
    try:
        opts = RunOptions.resolve(options, **run_options)
    except UserError as err:
        problems.append(str(err))
    try:
        if isinstance(processor_spec, processor.ProcessorABC):
            proc, label = processor_spec, f"{type(processor_spec).__module__}:{type(processor_spec).__qualname__}"
            ship.append(type(processor_spec).__module__)
        else:
            proc, module_name = load_processor(processor_spec, processor_options)
            label = processor_spec
            ship.append(module_name)
    except UserError as err:
        problems.append(str(err))
    try:
        fileset, kind = load_fileset(fileset_json, n_files_max_per_sample=max_files, samples_config=samples_config,
                                     input_format=input_format)
        schema_cls, schema_module = resolve_schema(schema, fileset, kind)
        if schema_module:
            ship.append(schema_module)
    except UserError as err:
        problems.append(str(err))
    if problems:
        raise AnalysisError("; ".join(problems))
    from analysis.execution.runner import execute

    ex = execute(fileset, _UserCodeErrors(proc, label), opts, schema=schema_cls, user_modules=tuple(ship),
                 fingerprint_of=proc)
    if not ex.output:
        raise AnalysisError("no events processed: " + "; ".join(ex.accounting.summary_lines()))
    try:
        out = proc.postprocess(ex.output)
    except UserError:
        raise
    except Exception as err:
        try:
            user_file = inspect.getsourcefile(type(proc))
        except TypeError:
            user_file = None
        raise AnalysisError(f"processor {label}: postprocess failed: {type(err).__name__}: {err} "
                            f"({_where(err, user_file)})") from None
    output = ex.output if out is None else out
    lost = ex.accounting.lost_per_dataset()
    chunk_lost = sum(r["events_lost"] for r in ex.accounting.lost_chunks)
    metrics = dict(ex.metrics, processor=label, schema=f"{schema_cls.__module__}.{schema_cls.__qualname__}",
                   events_processed=ex.metrics["events_in_chunks"] - chunk_lost,
                   events_lost=sum(lost.values()), events_lost_per_dataset=lost)
    result = UserRun(output, metrics, ex.fileset)
    if out_dir is not None:
        write_run_outputs(result, out_dir)
    return result


def write_run_outputs(result: UserRun, out_dir: str | Path) -> Path:
    """Write ``output.coffea`` (the whole output), ``histograms.root`` (every histogram) and ``metrics.json``."""
    from coffea.util import save

    from analysis.histio import save_output_histograms

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save(result.output, str(out / "output.coffea"))
    keys, notes = save_output_histograms(result.output, out / "histograms.root")
    result.metrics["warnings"] = list(result.metrics.get("warnings", [])) + notes
    doc = dict(result.metrics, histogram_keys=keys)
    (out / "metrics.json").write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    result.output_dir, result.histogram_keys = out, keys
    return out
