"""Checks of the cabinetry templates before the pyhf workspace is built: no input may make the model NaN.

cabinetry turns a ``NormPlusShape`` systematic into a ``normsys`` with hi/lo = Σ variation / Σ nominal and a
``histosys`` normalised by that ratio. pyhf's normsys interpolation (code 4, as in HistFactory) takes the
logarithm of hi and lo, so a variation template with a total yield ≤ 0 (a sparsely populated NLO variation
with negative weights), a symmetrised "down" side 2·nominal − up with a total ≤ 0, or a nominal template with
a zero total (a sample empty in a region) gives NaN everywhere in the model. Negative bins of one sample are
legitimate as long as every bin's total prediction stays positive.

:func:`check_templates` inspects every template cabinetry will read (the post-processed ``_modified`` files),
names region, sample and systematic of each problem and applies the physics fix with a warning:

* a variation with a total ≤ 0 is replaced by the mirror of the other side (2·nominal − other), if that side
  is a separate template with a positive total and its mirror is positive too; otherwise the systematic is
  pruned for that sample in that region (its templates set to nominal: no effect);
* a sample whose nominal template is zero in every bin of a region is left out of that region;

and refuses (one-line :class:`AnalysisError`) what has no safe fix: non-finite yields, a sample with a
non-positive total that is not empty, a bin whose total prediction is negative, a sample carrying a
NormFactor that is empty everywhere. :func:`check_workspace_finite` is the last guard before a
``workspace.json`` is written.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from cabinetry import configuration, histo

from analysis.errors import AnalysisError

log = logging.getLogger(__name__)

__all__ = ["TemplateFix", "check_templates", "check_workspace_finite"]

Policy = Literal["fix", "refuse"]


@dataclass(frozen=True)
class TemplateFix:
    """One problem found and what was done: ``action`` is "symmetrised", "pruned" or "sample dropped"."""

    region: str
    sample: str
    systematic: str | None
    problem: str
    action: str

    def message(self) -> str:
        """One line naming region, sample and systematic."""
        what = f"sample {self.sample!r}" + (f", systematic {self.systematic!r}" if self.systematic else "")
        return f"region {self.region!r}, {what}: {self.problem}; {self.action}"


def _load(folder: Path, region: dict, sample: dict, systematic: dict, template: str | None) -> histo.Histogram:
    return histo.Histogram.from_config(folder, region, sample, systematic, template=template, modified=True)


def _save(folder: Path, region: dict, sample: dict, systematic: dict, template: str | None,
          h: histo.Histogram) -> None:
    name = histo.name(region, sample, systematic, template=template)
    h.save(folder / (name + "_modified"))


def _where(region: dict, sample: dict, systematic: dict | None, template: str | None = None) -> str:
    s = f"region {region['Name']!r}, sample {sample['Name']!r}"
    if systematic is not None:
        s += f", systematic {systematic['Name']!r}" + (f" ({template})" if template else "")
    return s


def _finite(h: histo.Histogram, where: str) -> None:
    for what, arr in (("yield", h.yields), ("stat. uncertainty", h.stdev)):
        bad = np.flatnonzero(~np.isfinite(np.asarray(arr, dtype=float)))
        if bad.size:
            raise AnalysisError(f"{where}: non-finite {what} {arr[bad[0]]} in bin {int(bad[0])} of the input histogram")


def check_templates(config: dict[str, Any], *, policy: Policy = "fix") -> list[TemplateFix]:
    """Check (and with ``policy="fix"`` repair) every template of ``config`` after cabinetry's postprocessing.

    Args:
        config: a validated cabinetry config whose templates were collected and post-processed; samples left
            out of a region get a ``Regions`` list (the dict is modified in place so that the workspace, fit
            and plots all see the same model).
        policy: "fix" symmetrises from the other side or prunes, with a warning per fix; "refuse" raises
            instead of fixing.

    Returns:
        The fixes applied (empty if every template was fine).

    Raises:
        AnalysisError: one line naming region, sample (and systematic) for a problem without a safe fix, or
            for any problem under ``policy="refuse"``.
    """
    folder = Path(config["General"]["HistogramFolder"])
    fixes: list[TemplateFix] = []
    regions = config["Regions"]
    samples = [s for s in config["Samples"] if not s.get("Data", False)]
    kept: dict[str, list[str]] = {s["Name"]: [] for s in samples}

    def apply(fix: TemplateFix) -> None:
        if policy == "refuse":
            raise AnalysisError(fix.message().rsplit(";", 1)[0] + " (prune or symmetrise this template)")
        fixes.append(fix)  # warned about once every check passed (an unfixable problem is the only line)

    for region in regions:
        total = None
        for sample in samples:
            if not configuration.region_contains_sample(region, sample):
                continue
            nominal = _load(folder, region, sample, {}, None)
            _finite(nominal, _where(region, sample, None))
            nom = np.asarray(nominal.yields, dtype=float)
            if not np.any(nom):
                apply(TemplateFix(region["Name"], sample["Name"], None, "empty (zero in every bin), so its "
                                  "systematics are undefined", "left out of this region"))
                continue
            nom_total = float(nom.sum())
            if nom_total <= 0:
                raise AnalysisError(f"{_where(region, sample, None)}: nominal total yield {nom_total:.4g} ≤ 0 "
                                    "(negative-weight MC); the fit cannot normalise it — merge bins or regions, or "
                                    "use a larger sample")
            kept[sample["Name"]].append(region["Name"])
            total = nom if total is None else total + nom
            for systematic in config.get("Systematics", []):
                if systematic.get("Type") != "NormPlusShape":
                    continue
                if not (configuration.region_contains_modifier(region, systematic)
                        and configuration.sample_contains_modifier(sample, systematic)):
                    continue
                _check_variation(folder, region, sample, systematic, nominal, apply)
        if total is None:
            raise AnalysisError(f"region {region['Name']!r}: every sample is empty; remove the region or fill it")
        neg = np.flatnonzero(total < 0)
        if neg.size:
            i = int(neg[0])
            raise AnalysisError(f"region {region['Name']!r}: total nominal prediction {total[i]:.4g} < 0 in bin {i} "
                                "(negative-weight MC); merge bins or fix the input histograms")

    dropped = {f.sample for f in fixes if f.action == "left out of this region"}
    norm_samples = {n["Name"]: n for n in config.get("NormFactors", [])}
    for sample in samples:
        if sample["Name"] not in dropped:
            continue
        if kept[sample["Name"]]:
            sample["Regions"] = list(kept[sample["Name"]])
            continue
        carrying = [name for name, nf in norm_samples.items() if configuration.sample_contains_modifier(sample, nf)]
        if carrying:
            raise AnalysisError(f"sample {sample['Name']!r} is empty in every region but carries NormFactor "
                                f"{carrying[0]!r}: nothing to fit")
        config["Samples"] = [s for s in config["Samples"] if s is not sample]
    for fix in fixes:
        log.warning(fix.message())
    return fixes


def _check_variation(folder: Path, region: dict, sample: dict, systematic: dict, nominal: histo.Histogram,
                     apply) -> None:
    """Norm effects of one NormPlusShape systematic on one sample in one region must be positive."""
    nom = np.asarray(nominal.yields, dtype=float)
    nom_total = float(nom.sum())
    symmetrise = bool(systematic.get("Down", {}).get("Symmetrize", False))
    up = _load(folder, region, sample, systematic, "Up")
    _finite(up, _where(region, sample, systematic, "Up"))
    templates = {"Up": up}
    if not symmetrise:
        down = _load(folder, region, sample, systematic, "Down")
        _finite(down, _where(region, sample, systematic, "Down"))
        templates["Down"] = down
    totals = {side: float(np.sum(h.yields)) for side, h in templates.items()}
    if symmetrise:
        totals["Down"] = 2.0 * nom_total - totals["Up"]  # cabinetry's symmetrised down side
    bad = [side for side, t in totals.items() if not t > 0]
    if not bad:
        return
    effects = ", ".join(f"{side} {totals[side] / nom_total:+.3g}" for side in bad)
    problem = (f"{'/'.join(bad)} total yield {', '.join(f'{totals[s]:.4g}' for s in bad)} vs nominal {nom_total:.4g} "
               f"gives a non-positive normalisation effect ({effects}), which makes the model NaN")
    if not symmetrise and len(bad) == 1:
        side, other = bad[0], ("Down" if bad[0] == "Up" else "Up")
        mirror = 2.0 * nom - np.asarray(templates[other].yields, dtype=float)
        if mirror.sum() > 0 and 2.0 * nom_total - totals[other] > 0:
            fixed = histo.Histogram.from_arrays(nominal.bins, mirror, np.asarray(templates[other].stdev, float))
            _save(folder, region, sample, systematic, side, fixed)
            apply(TemplateFix(region["Name"], sample["Name"], systematic["Name"], problem,
                              f"{side} symmetrised from {other} (2·nominal − {other})"))
            return
    for side in templates:
        _save(folder, region, sample, systematic, side, histo.Histogram.from_arrays(
            nominal.bins, nom.copy(), np.asarray(nominal.stdev, dtype=float)))
    apply(TemplateFix(region["Name"], sample["Name"], systematic["Name"], problem,
                      "pruned for this sample in this region (templates set to nominal)"))


def check_workspace_finite(ws: dict[str, Any]) -> None:
    """Refuse a workspace with a NaN/inf number anywhere, naming channel, sample and modifier (never saved)."""
    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}/{k}")
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, f"{path}/{obj[i].get('name', i) if isinstance(v, dict) else i}")
        elif isinstance(obj, float) and not math.isfinite(obj):
            raise AnalysisError(f"workspace would contain {obj} at {path}; not written (check the input histograms)")

    walk(ws, "")
