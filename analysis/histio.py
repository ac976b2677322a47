"""Histogram I/O with the AGC key convention: ``{region}_{process}[_{variation}]``, plus pseudodata; and the
generic convention for any processor's output (:func:`output_histograms`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hist
import numpy as np
import uproot

from analysis.errors import AnalysisError, UserError

PSEUDODATA_PARTS = (("ttbar", "ME_var", 0.5), ("ttbar", "PS_var", 0.5), ("wjets", "nominal", 1.0))


def histogram_key(region: str, process: str, variation: str) -> str:
    """AGC key: ``{region}_{process}`` for nominal, ``{region}_{process}_{variation}`` otherwise."""
    return f"{region}_{process}" if variation == "nominal" else f"{region}_{process}_{variation}"


def fit_slice(h: hist.Hist, start_gev: float = 110.0, rebin: int = 2) -> hist.Hist:
    """AGC's fit binning: from the bin containing ``start_gev`` on, merging ``rebin`` bins (40 GeV)."""
    return h[hist.loc(start_gev)::hist.rebin(rebin), ...]


def pseudodata(h: hist.Hist, region: str, ttbar_scale: float = 1.0) -> hist.Hist:
    """AGC pseudodata: ttbar_scale·(ttbar ME_var + PS_var)/2 + W+jets nominal, for one region."""
    processes, variations = set(h.axes["process"]), set(h.axes["variation"])
    missing = [f"{p}/{v}" for p, v, _ in PSEUDODATA_PARTS if p not in processes or v not in variations]
    if missing:
        raise AnalysisError(f"cannot build pseudodata: histograms lack {', '.join(missing)}")
    total = None
    for process, variation, weight in PSEUDODATA_PARTS:
        scale = weight * (ttbar_scale if process == "ttbar" else 1.0)
        part = h[:, region, process, variation] * scale
        total = part if total is None else total + part
    return total


def to_keyed(h: hist.Hist, filled: set[tuple[str, str]] | None = None, ttbar_scale: float = 1.0,
             start_gev: float = 110.0, rebin: int = 2) -> dict[str, hist.Hist]:
    """1D histograms with AGC keys (fit binning) for each filled (process, variation), plus pseudodata."""
    hs = fit_slice(h, start_gev, rebin)
    out: dict[str, hist.Hist] = {}
    if filled is None:
        filled = {(p, v) for p in hs.axes["process"] for v in hs.axes["variation"]
                  if hs[:, :, p, v].values().any() or hs[:, :, p, v].variances().any()}
    for region in hs.axes["region"]:
        for process, variation in sorted(filled):
            out[histogram_key(region, process, variation)] = hs[:, region, process, variation]
        try:
            out[f"{region}_pseudodata"] = pseudodata(hs, region, ttbar_scale)
        except UserError:
            pass
    return out


def save_histograms(h: hist.Hist, path: str | Path, filled: set[tuple[str, str]] | None = None,
                    ttbar_scale: float = 1.0) -> list[str]:
    """Write ``histograms.root`` with AGC keys; return the keys written."""
    keyed = to_keyed(h, filled, ttbar_scale)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as f:
        for key, hh in keyed.items():
            f[key] = hh
    return list(keyed)


def require_root_file(path: str | Path, what: str = "histogram file") -> Path:
    """``path`` as a Path if it is an existing ROOT file (magic bytes ``root``); else one AnalysisError naming it.

    A JSON (or any other) file given where histograms are expected is reported as what it is, not as missing.
    """
    p = Path(path)
    if not p.is_file():
        raise AnalysisError(f"{p}: {what} not found")
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head != b"root":
        kind = "a JSON file" if p.suffix.lower() == ".json" or head[:1] in (b"{", b"[") else "not a ROOT file"
        raise AnalysisError(f"{p}: {kind}, expected a ROOT {what} (e.g. histograms.root from `ana run`)")
    return p


def read_histograms(path: str | Path) -> dict[str, hist.Hist]:
    """Read every histogram of a ROOT file into ``hist`` objects keyed by name."""
    p = require_root_file(path)
    try:
        with uproot.open(p) as f:
            return {k.split(";")[0]: f[k].to_hist() for k in f.keys(cycle=False, filter_classname="TH1*")}
    except (OSError, ValueError) as err:
        raise AnalysisError(f"{p}: cannot read histograms: {err}") from None


def histogram_digest(path: str | Path) -> str:
    """SHA-256 over every histogram's name, edges, values and variances (flow included): equal content, equal digest."""
    h = hashlib.sha256()
    with uproot.open(path) as f:
        keys = sorted(f.keys(cycle=False))
        if not keys:
            raise AnalysisError(f"{path}: holds no histograms")
        for key in keys:
            obj = f[key]
            h.update(key.encode())
            for arr in (obj.axis().edges(), obj.values(flow=True), obj.variances(flow=True)):
                h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()


_CATEGORY_AXES = (hist.axis.StrCategory, hist.axis.IntCategory)


def _key_part(value: Any) -> str:
    """A key component: characters outside ``[A-Za-z0-9.+-]`` become ``_`` (ROOT/cabinetry-safe)."""
    return re.sub(r"[^A-Za-z0-9.+\-]", "_", str(value))


def walk_histograms(output: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], hist.Hist]]:
    """Every ``hist.Hist`` in a (nested) mapping, with the path of keys leading to it, in insertion order."""
    if isinstance(output, hist.Hist):
        return [(path, output)]
    found: list[tuple[tuple[str, ...], hist.Hist]] = []
    if isinstance(output, Mapping):
        for key, value in output.items():
            found += walk_histograms(value, path + (str(key),))
    return found


def output_histograms(output: Any) -> tuple[dict[str, hist.Hist], list[str]]:
    """Split every histogram of a processor output into ROOT-writable histograms, one per category combination.

    Naming: the keys leading to the histogram in the (nested) output, then the value of each category axis
    (``StrCategory``/``IntCategory``, in axis order), joined with ``_``; characters outside
    ``[A-Za-z0-9.+-]`` become ``_``. E.g. ``{"ht": Hist(ht, process, variation)}`` → ``ht_ttbar_nominal``,
    ``ht_ttbar_jes_up``, … (``nominal`` is kept, so a cabinetry ``InputPath`` of
    ``histograms.root:ht_{SamplePath}_{VariationPath}`` with ``VariationPath: nominal`` reads them).
    The remaining (non-category) axes, 1 to 3 of them, become a TH1/TH2/TH3 with flow bins and Sumw2.

    Returns:
        (key → histogram, notes on histograms that cannot be written: no or > 3 non-category axes).
    Raises:
        AnalysisError: two histograms map to the same key.
    """
    out: dict[str, hist.Hist] = {}
    notes: list[str] = []
    origin: dict[str, str] = {}
    for path, h in walk_histograms(output):
        name = "/".join(path) or "<output>"
        cats = [i for i, ax in enumerate(h.axes) if isinstance(ax, _CATEGORY_AXES)]
        n_dense = len(h.axes) - len(cats)
        if not 1 <= n_dense <= 3:
            notes.append(f"{name}: {n_dense} non-category axes (ROOT holds 1 to 3); kept in output.coffea only")
            continue
        combos: list[tuple[Any, ...]] = [()]
        for i in cats:
            combos = [c + (v,) for c in combos for v in h.axes[i]]
        for combo in combos:
            index: list[Any] = [slice(None)] * len(h.axes)
            for i, v in zip(cats, combo):
                index[i] = hist.loc(v)
            key = "_".join(_key_part(x) for x in (*path, *combo)) or "histogram"
            if key in out:
                raise AnalysisError(f"histogram key {key!r} is produced by both {origin[key]} and {name} "
                                    f"{list(combo)}; rename one of them")
            out[key], origin[key] = h[tuple(index)], f"{name} {list(combo)}"
    return out, notes


def save_output_histograms(output: Any, path: str | Path) -> tuple[list[str], list[str]]:
    """Write every histogram of a processor output to a ROOT file (naming: :func:`output_histograms`).

    Returns:
        (keys written, notes on histograms left out).
    """
    keyed, notes = output_histograms(output)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as f:
        for key, hh in keyed.items():
            f[key] = hh
    return list(keyed), notes
