"""User controls on a pyhf workspace (``--fix NAME=VALUE``, ``--prune NAME``) and near-degenerate constraints.

A ``shapesys`` or ``staterror`` whose relative uncertainty is tiny (the default threshold is 10⁻⁵) has a
constraint term so sharp (Poisson τ = (n/σ)² ≈ 10¹⁰ and more) that optimisers stall on it, while its
physics content is nil: the parameter is fixed at 1.  :func:`near_degenerate_modifiers` finds them and
:func:`apply_controls` removes them (whole modifiers with ``pyhf.Workspace.prune``; single bins of a
``shapesys`` by a zero uncertainty, which pyhf treats as a fixed γ = 1), with a one-line notice each.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyhf

from analysis.stats.errors import StatsError

DEGENERATE_THRESHOLD = 1e-5


@dataclass
class Controls:
    """What was changed in a workspace before fitting, for the console and results.json."""

    fixed: dict[str, float] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record."""
        return {"fixed": dict(self.fixed), "pruned": list(self.pruned), "notices": list(self.notices)}


def parse_fix(items: Sequence[str] | Mapping[str, float] | None) -> dict[str, float]:
    """``["lumi=1", "bkg_norm=0.9"]`` (CLI ``--fix``) or a mapping → {name: value}; bad items raise StatsError."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        out = {str(k): float(v) for k, v in items.items()}
    else:
        out = {}
        for item in items:
            name, sep, value = str(item).partition("=")
            if not sep or not name.strip():
                raise StatsError(f"--fix {item!r}: expected NAME=VALUE")
            try:
                out[name.strip()] = float(value)
            except ValueError:
                raise StatsError(f"--fix {item!r}: {value!r} is not a number") from None
    for name, value in out.items():
        if not math.isfinite(value):
            raise StatsError(f"--fix {name}: value must be finite, got {value}")
    return out


def near_degenerate_modifiers(spec: Mapping[str, Any], threshold: float = DEGENERATE_THRESHOLD) -> list[dict[str, Any]]:
    """``shapesys``/``staterror`` bins whose relative uncertainty σ/n is below ``threshold`` (but non-zero).

    ``staterror`` of one name is one parameter per bin shared by all samples carrying it: its relative
    uncertainty is √(Σσ²)/Σn over those samples (pyhf's definition).

    Returns:
        One dict per affected modifier: channel, sample (``None`` for staterror), name, type, the bin
        indices, the smallest relative uncertainty, and ``all_bins`` (True when every bin with a
        non-zero uncertainty is affected).
    """
    found: list[dict[str, Any]] = []
    for channel in spec.get("channels", []):
        stat: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for sample in channel["samples"]:
            nominal = np.asarray(sample["data"], dtype=float)
            for mod in sample.get("modifiers", []):
                if mod["type"] == "shapesys":
                    sigma = np.asarray(mod["data"], dtype=float)
                    active = (nominal > 0) & (sigma > 0)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        rel = np.where(active, sigma / np.where(nominal > 0, nominal, 1.0), np.inf)
                    bad = np.flatnonzero(active & (rel < threshold))
                    if bad.size:
                        found.append({"channel": channel["name"], "sample": sample["name"], "name": mod["name"],
                                      "type": "shapesys", "bins": bad.tolist(), "relative": float(rel[bad].min()),
                                      "all_bins": bool(bad.size == active.sum())})
                elif mod["type"] == "staterror":
                    stat.setdefault(mod["name"], []).append((nominal, np.asarray(mod["data"], dtype=float)))
        for name, parts in stat.items():
            total = sum(n for n, _ in parts)
            sigma = np.sqrt(sum(s**2 for _, s in parts))
            active = (total > 0) & (sigma > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(active, sigma / np.where(total > 0, total, 1.0), np.inf)
            bad = np.flatnonzero(active & (rel < threshold))
            if bad.size:
                found.append({"channel": channel["name"], "sample": None, "name": name, "type": "staterror",
                              "bins": bad.tolist(), "relative": float(rel[bad].min()),
                              "all_bins": bool(bad.size == active.sum())})
    return found


def _modifier_names(spec: Mapping[str, Any]) -> set[str]:
    return {m["name"] for c in spec.get("channels", []) for s in c["samples"] for m in s.get("modifiers", [])}


def _par_names(spec: Mapping[str, Any], measurement: str | None) -> list[str]:
    ws = pyhf.Workspace(spec)
    model = ws.model(measurement_name=measurement) if measurement else ws.model()
    return list(model.config.par_names)


def apply_controls(spec: Mapping[str, Any], *, fix: Mapping[str, float] | Sequence[str] | None = None,
                   prune: Sequence[str] = (), measurement: str | None = None,
                   degenerate_threshold: float | None = DEGENERATE_THRESHOLD) -> tuple[dict[str, Any], Controls]:
    """A copy of workspace ``spec`` with modifiers pruned, parameters fixed and near-degenerate constraints removed.

    Args:
        spec: pyhf workspace specification (not modified).
        fix: {parameter: value} or CLI items ``NAME=VALUE``; the parameter becomes fixed at that value in
            the measurement's config (vector parameters, e.g. a staterror, in every bin).
        prune: modifier names to remove from every sample (``pyhf.Workspace.prune``).  One bin of a
            ``shapesys``/``staterror`` (``staterror_SR[3]``) gets zero uncertainty instead (γ fixed at 1).
        measurement: measurement whose config receives the fixed parameters (default: the first).
        degenerate_threshold: remove ``shapesys``/``staterror`` bins with σ/n below it (None: keep).

    Returns:
        (new spec, :class:`Controls` with the notices to print).

    Raises:
        StatsError: unknown modifier/parameter or a POI that would be pruned.
    """
    controls = Controls()
    out = copy.deepcopy(dict(spec))
    fixes = parse_fix(fix)
    measurements = out.get("measurements", [])
    if not measurements:
        raise StatsError("workspace has no measurement")
    names = [m["name"] for m in measurements]
    if measurement is not None and measurement not in names:
        raise StatsError(f"no measurement named {measurement!r} (available: {names})")
    meas = measurements[names.index(measurement)] if measurement else measurements[0]
    poi = meas["config"].get("poi")

    modifiers = _modifier_names(out)
    whole, bins = [], {}
    for name in prune:
        base, _, rest = name.partition("[")
        if rest and base in modifiers:
            bins.setdefault(base, []).append(int(rest.rstrip("]")))
        elif name in modifiers:
            whole.append(name)
        else:
            raise StatsError(f"--prune {name}: no modifier or parameter of that name "
                             f"(modifiers: {', '.join(sorted(modifiers)[:15])}{', …' if len(modifiers) > 15 else ''})")
    if poi in whole:
        raise StatsError(f"--prune {poi}: cannot prune the parameter of interest")

    if degenerate_threshold is not None:
        for item in near_degenerate_modifiers(out, degenerate_threshold):
            where = f"{item['channel']}/{item['sample']}" if item["sample"] else item["channel"]
            if item["all_bins"] and item["type"] == "shapesys" and _only_in(out, item["name"], item["channel"],
                                                                               item["sample"]):
                if item["name"] not in whole:
                    whole.append(item["name"])
                    controls.notices.append(
                        f"pruned {item['type']} {item['name']!r} ({where}): relative uncertainty "
                        f"{item['relative']:.2g} < {degenerate_threshold:g} is a fixed γ = 1 in practice")
            else:
                _zero_bins(out, item)
                label = f"{item['name']}[{','.join(map(str, item['bins']))}]"
                controls.pruned.append(label)
                controls.notices.append(
                    f"pruned {item['type']} {label} ({where}): relative uncertainty {item['relative']:.2g} "
                    f"< {degenerate_threshold:g} is a fixed γ = 1 in practice")

    if whole:
        try:
            out = dict(pyhf.Workspace(out).prune(modifiers=whole))
        except pyhf.exceptions.InvalidWorkspaceOperation as err:  # pragma: no cover - names checked above
            raise StatsError(f"--prune: {err}") from None
        controls.pruned.extend(whole)
        for name in whole:
            if not any(n.startswith(f"pruned {t} {name!r}") for n in controls.notices for t in ("shapesys", "staterror")):
                controls.notices.append(f"pruned modifier {name!r} (user request)")
        meas = next(m for m in out["measurements"] if m["name"] == meas["name"])

    for base, idx in bins.items():
        types = {m["type"] for c in out["channels"] for smp in c["samples"] for m in smp.get("modifiers", [])
                 if m["name"] == base}
        if not types <= {"shapesys", "staterror"}:
            raise StatsError(f"--prune {base}[...]: single bins can be pruned only for shapesys/staterror "
                             f"(it is {', '.join(sorted(types))}); prune the whole modifier with --prune {base}")
        for c in out["channels"]:
            for smp in c["samples"]:
                for m in smp.get("modifiers", []):
                    if m["name"] == base:
                        for i in idx:
                            if not 0 <= i < len(m["data"]):
                                raise StatsError(f"--prune {base}[{i}]: bin out of range (0..{len(m['data']) - 1})")
                            m["data"][i] = 0.0
        label = f"{base}[{','.join(map(str, idx))}]"
        controls.pruned.append(label)
        controls.notices.append(f"pruned {label} (user request; γ fixed at 1)")

    if fixes:
        par_names = _par_names(out, meas["name"])
        params = meas["config"].setdefault("parameters", [])
        by_name = {p["name"]: p for p in params}
        for name, value in fixes.items():
            if "[" in name:
                raise StatsError(f"--fix {name}: pyhf fixes a vector parameter in all its bins; use --fix "
                                 f"{name.partition('[')[0]}=VALUE (or --prune {name} for one shapesys/staterror bin)")
            size = sum(1 for p in par_names if p == name or p.startswith(f"{name}["))
            if size == 0:
                raise StatsError(f"--fix {name}: no such parameter (model parameters: "
                                 f"{', '.join(p for p in par_names[:15])}{', …' if len(par_names) > 15 else ''})")
            entry = by_name.setdefault(name, {"name": name})
            if entry not in params:
                params.append(entry)
            entry["fixed"] = True
            entry["inits"] = [value] * size
            controls.fixed[name] = value
            if name == poi:
                controls.notices.append(f"the parameter of interest {poi} is fixed at {value:g}")
    return out, controls


def _only_in(spec: Mapping[str, Any], name: str, channel: str, sample: str | None) -> bool:
    hits = [(c["name"], s["name"]) for c in spec["channels"] for s in c["samples"]
            for m in s.get("modifiers", []) if m["name"] == name]
    return hits == [(channel, sample)]


def _zero_bins(spec: dict[str, Any], item: Mapping[str, Any]) -> None:
    """Set the uncertainty of the near-degenerate bins to 0 (pyhf: no parameter effect, γ fixed at 1)."""
    for channel in spec["channels"]:
        if channel["name"] != item["channel"]:
            continue
        for sample in channel["samples"]:
            if item["sample"] is not None and sample["name"] != item["sample"]:
                continue
            for mod in sample.get("modifiers", []):
                if mod["name"] == item["name"] and mod["type"] == item["type"]:
                    for b in item["bins"]:
                        mod["data"][b] = 0.0
