"""AGC-style ntuples/NanoAOD json (local or remote paths) → coffea fileset with metadata."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fileset.errors import ConfigError, FilesetError
from fileset.loaders import load_json, load_yaml, validate_model
from fileset.models import CoffeaFileset, FilesetJson, SamplesConfig

INPUT_FORMATS = ("ntuple", "nanoaod")
REMOTE_PREFIXES = ("root://", "http://", "https://", "s3://", "xroot://")


def _check_finite_samples(doc: dict[str, Any], source: str) -> None:
    """NaN and ±inf luminosity or cross-sections refused with the model's rule (a finite number > 0), naming every
    offending key (checked before :class:`fileset.models.SamplesConfig`, which refuses them too, with this message)."""
    if not isinstance(doc, dict):
        return
    values = {"luminosity_pb": doc.get("luminosity_pb")}
    xsecs = doc.get("cross_sections_pb")
    values.update({f"cross_sections_pb.{k}": v for k, v in xsecs.items()} if isinstance(xsecs, dict) else {})
    bad = [f"{k}: must be a finite number > 0, got {v!r}" for k, v in values.items()
           if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ConfigError(f"{source}: invalid config: " + "; ".join(bad))


def load_samples_config(path: str | Path | None = None) -> dict[str, Any]:
    """Cross-sections and luminosity: the packaged ``fileset/samples.yml`` unless a path is given."""
    if path is None:
        text = resources.files("fileset").joinpath("samples.yml").read_text()
        source = "fileset/samples.yml"
    else:
        doc = load_yaml(path, what="samples config")
        _check_finite_samples(doc, str(path))
        validate_model(doc, SamplesConfig, str(path))
        doc.setdefault("tree", "events")
        return doc
    doc = yaml.safe_load(text)
    _check_finite_samples(doc, source)
    validate_model(doc, SamplesConfig, source)
    doc.setdefault("tree", "events")
    return doc


def is_remote(path: str) -> bool:
    """True for xrootd/http(s)/s3 paths, which are passed to uproot unchanged."""
    return path.startswith(REMOTE_PREFIXES)


def load_ntuples_json(path: str | Path) -> dict[str, Any]:
    """Read and validate an AGC ntuples.json / nanoaod_inputs.json document.

    Raises:
        FilesetError: the document is a coffea-style fileset (one line saying which layout is needed).
        ConfigError: schema violations (every problem, with its key path).
    """
    doc = load_json(path, what="fileset json")
    if is_coffea_fileset(doc) or _looks_coffea(doc):
        raise FilesetError(f"{path}: a coffea-style fileset ({{dataset: {{files, treename, metadata}}}}); this step reads "
                           "the AGC layout {process: {variation: {files: [{path, nevts}]}}} as `ana generate agc` writes "
                           "it (coffea-style filesets run with `ana run --processor`)")
    validate_model(doc, FilesetJson, str(path))
    return doc


def _looks_coffea(doc: Any) -> bool:
    """True for a document meant as a coffea-style fileset but invalid as one (e.g. ``"files"`` missing): a dataset
    with coffea's per-dataset keys (``files``, ``treename``, ``metadata``) holding a non-mapping value — in the AGC
    layout every value of a process is a variation's dict."""
    if not isinstance(doc, dict) or not doc or not all(isinstance(v, dict) for v in doc.values()):
        return False
    return any(any(k in v for k in ("files", "treename", "metadata")) and not all(isinstance(x, dict) for x in v.values())
               for v in doc.values())


def build_fileset(
    json_path: str | Path,
    n_files_max_per_sample: int = -1,
    samples_config: str | Path | dict[str, Any] | None = None,
    processes: list[str] | None = None,
    input_format: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Coffea fileset ``{process__variation: {files, treename, metadata}}`` from an AGC-style json.

    Relative paths are resolved against the json's folder; remote paths are kept as they are.
    ``nevts`` in the metadata is the total over the files actually used (AGC's normalisation).
    The input format is ``input_format`` if given (e.g. AGC's own ``nanoaod_inputs.json``, which has
    no ``format`` field), else each entry's ``format`` field, else ``ntuple``.
    """
    if isinstance(n_files_max_per_sample, bool) or not isinstance(n_files_max_per_sample, int) \
            or (n_files_max_per_sample < 1 and n_files_max_per_sample != -1):
        raise FilesetError(f"max files per sample must be ≥ 1, or -1 for all, got {n_files_max_per_sample!r}")
    if input_format is not None and input_format not in INPUT_FORMATS:
        raise FilesetError(f"unknown input format {input_format!r} (choose from {', '.join(INPUT_FORMATS)})")
    doc = load_ntuples_json(json_path)
    cfg = samples_config if isinstance(samples_config, dict) else load_samples_config(samples_config)
    base = Path(json_path).resolve().parent
    fileset: dict[str, dict[str, Any]] = {}
    for process, variations in doc.items():
        if processes is not None and process not in processes:
            continue
        if process not in cfg["cross_sections_pb"]:
            raise FilesetError(f"{json_path}: process {process!r} has no cross-section in the samples config")
        for variation, entry in variations.items():
            files = entry["files"] if n_files_max_per_sample < 0 else entry["files"][:n_files_max_per_sample]
            paths = [f["path"] if is_remote(f["path"]) else str((base / f["path"]).resolve()) for f in files]
            fmt = input_format or entry.get("format", "ntuple")
            fileset[f"{process}__{variation}"] = {
                "files": paths,
                "treename": cfg["tree"] if fmt == "ntuple" else "Events",
                "metadata": {
                    "process": process,
                    "variation": variation,
                    "xsec": float(cfg["cross_sections_pb"][process]),
                    "lumi": float(cfg["luminosity_pb"]),
                    "nevts": int(sum(f["nevts"] for f in files)),
                    "pseudodata_scale": float(entry.get("pseudodata_scale", 1.0)),
                    "format": fmt,
                },
            }
    if not fileset:
        raise FilesetError(f"{json_path}: no samples selected")
    return fileset


def is_coffea_fileset(doc: Any) -> bool:
    """True for a coffea-style fileset ``{dataset: {"files": ...}}`` (AGC-style jsons nest one level deeper)."""
    return isinstance(doc, dict) and bool(doc) and all(isinstance(v, dict) and "files" in v for v in doc.values())


def load_coffea_fileset(json_path: str | Path) -> dict[str, dict[str, Any]]:
    """Coffea fileset ``{dataset: {files: [paths], treename, metadata}}`` from a coffea-style json.

    Accepted per dataset: ``"files"`` as ``{path: treename}`` or ``[paths]`` (then ``"treename"`` is
    required), optional ``"treename"`` (the default for ``{path: null}`` entries) and ``"metadata"`` (passed
    to the processor as ``events.metadata``). All files of a dataset must share one tree. Relative paths are
    resolved against the json's folder; remote paths (``root://``, ``https://``, ...) are kept.

    Raises:
        ConfigError: missing file, invalid JSON or schema violations (every problem, with its key path).
        FilesetError: a dataset without a tree name, or with files in different trees.
    """
    doc = load_json(json_path, what="fileset json")
    validate_model(doc, CoffeaFileset, str(json_path))
    base = Path(json_path).resolve().parent
    out: dict[str, dict[str, Any]] = {}
    for dataset, spec in doc.items():
        files = spec["files"]
        default = spec.get("treename")
        pairs = [(p, default) for p in files] if isinstance(files, list) else [(p, t or default) for p, t in files.items()]
        trees = {t for _, t in pairs}
        if None in trees:
            raise FilesetError(f"{json_path}: dataset {dataset!r}: no tree name (give \"treename\" or files as {{path: tree}})")
        if len(trees) > 1:
            raise FilesetError(f"{json_path}: dataset {dataset!r}: files are in different trees {sorted(trees)}; "
                               "use one dataset per tree")
        paths = [p if is_remote(p) else str((base / p).resolve()) for p, _ in pairs]
        out[dataset] = {"files": paths, "treename": trees.pop(), "metadata": dict(spec.get("metadata") or {})}
    return out


def load_fileset(json_path: str | Path, **agc_options: Any) -> tuple[dict[str, dict[str, Any]], str]:
    """Any supported fileset json → (coffea fileset, kind): ``"coffea"`` or ``"agc"`` (see :func:`build_fileset`).

    ``agc_options`` (``n_files_max_per_sample``, ``samples_config``, ``processes``, ``input_format``) apply to
    AGC-style jsons only.
    """
    doc = load_json(json_path, what="fileset json")
    if is_coffea_fileset(doc) or _looks_coffea(doc):  # an invalid coffea-style json gets coffea-style messages
        return load_coffea_fileset(json_path), "coffea"
    return build_fileset(json_path, **agc_options), "agc"
