"""Histogram I/O, one semantics for every command (ROOT's TH1), plus the AGC key convention.

* :func:`read_th1` / :func:`write_th1`: a single 1D histogram with ROOT's semantics — under/overflow bins are
  part of the histogram (read, scaled and written with it, as ``TH1::Scale`` does), the per-bin variance is the
  stored Σw² (``fSumw2``) or, for a histogram without Sumw2 (unit-weight fills), the bin content itself, i.e.
  errors √N (``TH1::GetBinError``; HistFactory's ``hist2workspace`` uses these errors for MC statistics).
  When the √N rule has to be assumed the histogram says so (:attr:`TH1Hist.assumption`).
* AGC keys ``{region}_{process}[_{variation}]`` plus pseudodata for the ttbar workflow, and the generic
  convention for any processor's output (:func:`output_histograms`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import hist
import numpy as np
import uproot

from analysis.errors import AnalysisError, UserError
from schemas.reading import inflate_errors

log = logging.getLogger(__name__)

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


def _keyed_plan(hs: hist.Hist, filled: set[tuple[str, str]] | None, ttbar_scale: float
                ) -> dict[str, tuple[str, str, str] | hist.Hist]:
    """AGC key → (region, process, variation) of ``hs`` (fit binning), or the pseudodata histogram, in file order."""
    if filled is None:
        filled = {(p, v) for p in hs.axes["process"] for v in hs.axes["variation"]
                  if hs[:, :, p, v].values().any() or hs[:, :, p, v].variances().any()}
    out: dict[str, tuple[str, str, str] | hist.Hist] = {}
    for region in hs.axes["region"]:
        for process, variation in sorted(filled):
            out[histogram_key(region, process, variation)] = (region, process, variation)
        try:
            out[f"{region}_pseudodata"] = pseudodata(hs, region, ttbar_scale)
        except UserError:
            pass
    return out


def to_keyed(h: hist.Hist, filled: set[tuple[str, str]] | None = None, ttbar_scale: float = 1.0,
             start_gev: float = 110.0, rebin: int = 2) -> dict[str, hist.Hist]:
    """1D histograms with AGC keys (fit binning) for each filled (process, variation), plus pseudodata."""
    hs = fit_slice(h, start_gev, rebin)
    return {key: hs[:, where[0], where[1], where[2]] if isinstance(where, tuple) else where
            for key, where in _keyed_plan(hs, filled, ttbar_scale).items()}


def _th1(values: np.ndarray, variances: np.ndarray, axis: Any, title: str = "") -> Any:
    """uproot's TH1D of a 1D Weight histogram on a regular axis, from its flow-inclusive values and variances.

    The same members, in the same arithmetic, as ``uproot.writing.identify.to_writable`` builds for the ``hist``
    object (fEntries = Σ values with flow; fTsumw, fTsumwx, fTsumwx2 over the in-range bins at bin centres), without
    the per-histogram ``hist`` slicing and accessors: the serialised bytes are identical (tests/unit/test_histio_write.py).
    """
    from uproot.writing.identify import to_TAxis, to_TH1x

    edges = axis.edges
    data, sumw2 = values.astype(">f8"), variances.astype(">f8")
    inner = values[1:-1]
    centers = (edges[:-1] + edges[1:]) / 2.0
    tsumw = inner.sum()
    xaxis = to_TAxis(fName="xaxis", fTitle=axis.label, fNbins=len(axis), fXmin=edges[0], fXmax=edges[-1],
                     fXbins=np.array([], dtype=">f8"))
    return to_TH1x(fName=None, fTitle=title, data=data, fEntries=data.sum(), fTsumw=tsumw, fTsumw2=tsumw,
                   fTsumwx=(inner * centers).sum(), fTsumwx2=(inner * centers**2).sum(), fSumw2=sumw2, fXaxis=xaxis)


def save_histograms(h: hist.Hist, path: str | Path, filled: set[tuple[str, str]] | None = None,
                    ttbar_scale: float = 1.0) -> list[str]:
    """Write ``histograms.root`` with AGC keys (the histograms of :func:`to_keyed`); return the keys written.

    Regular-axis Weight histograms (``run ttbar``'s) are converted from one view of the whole histogram; any other
    kind goes through uproot's own conversion of the ``hist`` object. The file holds histograms only (users loop
    over its keys calling ``.values()``); run information goes to ``metrics.json`` next to it.
    """
    hs = fit_slice(h, 110.0, 2)
    plan = _keyed_plan(hs, filled, ttbar_scale)
    axis = hs.axes[0]
    direct = (issubclass(hs.storage_type, hist.storage.Weight) and isinstance(axis, hist.axis.Regular)
              and getattr(axis, "transform", None) is None and all(isinstance(a, hist.axis.StrCategory) for a in hs.axes[1:]))
    view = hs.view(flow=True) if direct else None
    cats = [{name: i for i, name in enumerate(a)} for a in hs.axes[1:]]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as f:
        for key, where in plan.items():
            if not isinstance(where, tuple):
                f[key] = where
            elif direct:
                # category axes have no underflow: category i is view index i
                cell = view[(slice(None), *(c[w] for c, w in zip(cats, where)))]
                title = getattr(hs, "title", getattr(hs, "name", "")) or ""
                f[key] = _th1(np.asarray(cell["value"]), np.asarray(cell["variance"]), axis, title)
            else:
                f[key] = hs[:, where[0], where[1], where[2]]
    return list(plan)


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


#: What uproot raises when a ROOT file's bytes are damaged: truncated (``OSError: expected Chunk of length …``),
#: overwritten (``ValueError: unrecognized compression algorithm``, ``zlib.error`` or ISA-L's error when a run in
#: this process selected that inflater), garbled object streamers (``DeserializationError``, ``struct.error``) or
#: cut short (``EOFError``). Caught at the reading boundary only.
CORRUPT_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, ValueError, struct.error, uproot.deserialization.DeserializationError, *inflate_errors(),
)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else ""


def corrupt_file_error(path: str | Path, err: BaseException, key: str | None = None) -> AnalysisError:
    """One-line user error for a damaged ROOT file: ``{path}: cannot read histogram 'key': file is corrupt …``."""
    if isinstance(err, FileNotFoundError):
        return AnalysisError(f"{path}: ROOT file not found")
    what = f"cannot read histogram {key!r}" if key else "cannot read its list of histograms"
    mod = type(err).__module__
    name = type(err).__name__ if mod == "builtins" else f"{mod.split('.')[0]}.{type(err).__name__}"
    return AnalysisError(f"{path}: {what}: file is corrupt or truncated ({name}: {_first_line(err).rstrip(',')})")


def find_unreadable_histogram(path: str | Path) -> AnalysisError | None:
    """Read every histogram of ``path``; return the one-line error for the first damaged one (``None``: all read).

    Used to name the culprit when a library (cabinetry) failed while reading the file.
    """
    key = None
    try:
        with uproot.open(path) as f:
            for key in f.keys(cycle=False):
                f[key]
    except CORRUPT_READ_ERRORS as err:
        return corrupt_file_error(path, err, key)
    return None


def read_histograms(path: str | Path) -> dict[str, hist.Hist]:
    """Read every histogram of a ROOT file into ``hist`` objects keyed by name.

    Raises:
        AnalysisError: missing/non-ROOT file, or a damaged one (naming the histogram that cannot be read).
    """
    p = require_root_file(path)
    key = None
    out: dict[str, hist.Hist] = {}
    try:
        with uproot.open(p) as f:
            for key in f.keys(cycle=False, filter_classname="TH1*"):
                out[key.split(";")[0]] = f[key].to_hist()
    except CORRUPT_READ_ERRORS as err:
        raise corrupt_file_error(p, err, key) from None
    return out


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes: identifies one written file exactly (``ana run`` records it for
    ``histograms.root`` in ``metrics.json``, so that what metrics.json says is only applied to that very file).

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def histogram_digest(path: str | Path) -> str:
    """SHA-256 over every histogram's name, edges, values and variances (flow included): equal content, equal digest."""
    h = hashlib.sha256()
    key = None
    try:
        with uproot.open(path) as f:
            keys = sorted(f.keys(cycle=False))
            if not keys:
                raise AnalysisError(f"{path}: holds no histograms")
            for key in keys:
                obj = f[key]
                h.update(key.encode())
                for arr in (obj.axis().edges(), obj.values(flow=True), obj.variances(flow=True)):
                    h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    except CORRUPT_READ_ERRORS as err:
        raise corrupt_file_error(path, err, key) from None
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


# --------------------------------------------------------------------------------------------------
# One TH1 with ROOT semantics
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TH1Hist:
    """A 1D histogram as ROOT defines it: in-range bins, under/overflow, per-bin variances.

    ``values``/``variances`` are the in-range bins (shape (n,)); ``underflow``/``overflow`` are
    (content, variance) pairs. ``variances`` always holds ROOT's per-bin variance: the stored Σw², or the
    (absolute) content when no Sumw2 was stored (``sumw2_stored`` False; errors √N).
    """

    values: np.ndarray
    edges: np.ndarray
    variances: np.ndarray
    source: str
    axis_title: str = ""
    sumw2_stored: bool = True
    underflow: tuple[float, float] = (0.0, 0.0)
    overflow: tuple[float, float] = (0.0, 0.0)

    @property
    def n_bins(self) -> int:
        """Number of in-range bins."""
        return int(self.values.size)

    def values_flow(self) -> np.ndarray:
        """Contents with flow bins, shape (n + 2,): [underflow, bins..., overflow]."""
        return np.concatenate([[self.underflow[0]], self.values, [self.overflow[0]]])

    def variances_flow(self) -> np.ndarray:
        """Variances with flow bins, shape (n + 2,)."""
        return np.concatenate([[self.underflow[1]], self.variances, [self.overflow[1]]])

    @property
    def assumption(self) -> str | None:
        """The notice to show when √N errors had to be assumed (no Sumw2 stored), else None."""
        if self.sumw2_stored:
            return None
        return (f"{self.source}: no Sumw2 stored; taking ROOT's errors sqrt(content) per bin "
                "(as for unit-weight fills; store Sumw2 for weighted histograms)")

    def scaled(self, factor: float) -> "TH1Hist":
        """ROOT's ``TH1::Scale(factor)``: every bin incl. flow ×factor, variances ×factor² (Sumw2 then stored)."""
        f2 = factor * factor
        return replace(self, values=self.values * factor, variances=self.variances * f2, sumw2_stored=True,
                       underflow=(self.underflow[0] * factor, self.underflow[1] * f2),
                       overflow=(self.overflow[0] * factor, self.overflow[1] * f2))

    def to_hist(self, name: str = "x") -> hist.Hist:
        """``hist`` object (Weight storage, flow bins filled) holding exactly this histogram."""
        h = hist.Hist(hist.axis.Variable(self.edges, name=name, label=self.axis_title or name),
                      storage=hist.storage.Weight())
        view = h.view(flow=True)
        view.value = self.values_flow()
        view.variance = self.variances_flow()
        return h


def read_th1(path: str | Path, key: str, *, allow_negative: bool = False) -> TH1Hist:
    """Read 1D histogram ``key`` from ROOT file ``path`` with ROOT's semantics (see :class:`TH1Hist`).

    Args:
        path: ROOT file.
        key: histogram name (``name`` or ``name;cycle``).
        allow_negative: accept negative bin contents (negative-weight MC); by default they are refused.

    Raises:
        AnalysisError: missing file/key, not a TH1, no bins, non-finite contents/variances, negative variances,
            or (unless allowed) negative contents — one line naming file, key and the first bad bin.
    """
    p = Path(path)
    source = f"{p}:{key}"
    if not p.is_file():
        raise AnalysisError(f"{p}: ROOT file not found")
    try:
        rootfile = uproot.open(p)
    except Exception as err:  # uproot raises several types for non-ROOT files
        with open(p, "rb") as fh:
            if fh.read(4) == b"root" and isinstance(err, CORRUPT_READ_ERRORS):
                raise corrupt_file_error(p, err) from None
        raise AnalysisError(f"{p}: cannot open as a ROOT file ({type(err).__name__}: {err})") from None
    with rootfile:
        try:
            obj = rootfile[key]
        except CORRUPT_READ_ERRORS as err:
            raise corrupt_file_error(p, err, key) from None
        except (KeyError, uproot.KeyInFileError):
            hists = sorted(
                {k.split(";")[0] for k, c in rootfile.classnames().items() if c.startswith(("TH1", "TH2", "TH3"))}
            )
            raise AnalysisError(f"{source}: histogram key {key!r} not found (histograms in file: {hists})") from None
        classname = getattr(obj, "classname", type(obj).__name__)
        if not isinstance(obj, uproot.behaviors.TH1.TH1) or classname.startswith("TProfile"):
            raise AnalysisError(f"{source}: is a {classname}, expected a 1D histogram (TH1)")
        values = np.asarray(obj.values(flow=True), dtype=float)
        edges = np.asarray(obj.axis().edges(flow=False), dtype=float)
        stored = len(obj.member("fSumw2")) > 0
        variances = np.asarray(obj.variances(flow=True), dtype=float) if stored else np.abs(values)
        try:
            axis_title = str(obj.axis().member("fTitle") or "")
        except Exception:  # noqa: BLE001 - titles are cosmetic
            axis_title = ""
    h = TH1Hist(values=values[1:-1], edges=edges, variances=variances[1:-1], source=source, axis_title=axis_title,
                sumw2_stored=stored, underflow=(float(values[0]), float(variances[0])),
                overflow=(float(values[-1]), float(variances[-1])))
    check_th1(h, allow_negative=allow_negative)
    return h


def check_th1(h: TH1Hist, *, allow_negative: bool = False) -> None:
    """Refuse NaN/inf contents or variances, negative variances and (unless allowed) negative contents."""
    if h.n_bins == 0:
        raise AnalysisError(f"{h.source}: histogram has no bins")
    labels = ["underflow"] + [f"bin {i} [{h.edges[i]:g}, {h.edges[i + 1]:g})" for i in range(h.n_bins)] + ["overflow"]
    for name, arr, negative_ok in (("content", h.values_flow(), allow_negative), ("variance", h.variances_flow(), False)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise AnalysisError(f"{h.source}: {labels[bad[0]]} has non-finite {name} {arr[bad[0]]}")
        neg = np.flatnonzero(arr < 0)
        if neg.size and not negative_ok:
            raise AnalysisError(
                f"{h.source}: {labels[neg[0]]} has negative {name} {arr[neg[0]]:g}"
                f" ({neg.size} negative bin(s) in total)"
            )


def write_th1(path: str | Path, name: str, h: TH1Hist, *, mode: str = "recreate") -> Path:
    """Write ``h`` as a TH1D named ``name`` (flow bins and Sumw2 included) to ``path`` (recreate or update)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    opener = uproot.update if mode == "update" and out.exists() else uproot.recreate
    with opener(out) as f:
        f[name] = h.to_hist()
    return out
