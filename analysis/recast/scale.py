"""Scaling step of the RECAST workflow: raw MC histogram → expected events, scale = σ·L·k·ε / Σw.

Units are explicit: σ in pb, L in fb⁻¹ (converted with 1 fb⁻¹ = 1000 pb⁻¹), k-factor and filter
efficiency dimensionless, Σw the sum of generator weights of the *whole* sample before any selection.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import hist
import numpy as np
import uproot

from analysis.errors import AnalysisError
from analysis.recast.reinterpret import read_histogram

PB_INV_PER_FB_INV = 1000.0  # 1 fb⁻¹ = 1000 pb⁻¹


@dataclass(frozen=True)
class ScaleResult:
    """The factor applied and the scaled yields; ``to_dict`` is the JSON written next to the output."""

    scale_factor: float
    cross_section_pb: float
    luminosity_fb_inv: float
    luminosity_pb_inv: float
    k_factor: float
    filter_efficiency: float
    sum_of_weights: float
    histogram: str
    input_file: str
    output_file: str
    raw_integral: float
    scaled_integral: float

    def to_dict(self) -> dict[str, float | str]:
        """Plain dict for JSON."""
        return asdict(self)


def scale_factor(xsec_pb: float, luminosity_fb_inv: float, sumweights: float, kfactor: float = 1.0,
                 filterfactor: float = 1.0) -> float:
    """Return σ[pb] · L[fb⁻¹]·1000 · k · ε / Σw (events per unit generator weight)."""
    checks = {
        "--xsec (pb)": xsec_pb,
        "--luminosity (fb^-1)": luminosity_fb_inv,
        "--sumweights": sumweights,
        "--kfactor": kfactor,
        "--filterfactor": filterfactor,
    }
    for name, value in checks.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise AnalysisError(f"{name} must be a positive finite number, got {value}")
    if filterfactor > 1:
        raise AnalysisError(f"--filterfactor is an efficiency in (0, 1], got {filterfactor}")
    return xsec_pb * (luminosity_fb_inv * PB_INV_PER_FB_INV) * kfactor * filterfactor / sumweights


def scale_histogram(
    input_file: str | Path,
    hist_name: str,
    out_file: str | Path,
    *,
    xsec_pb: float,
    sumweights: float,
    kfactor: float = 1.0,
    filterfactor: float = 1.0,
    luminosity_fb_inv: float,
) -> ScaleResult:
    """Scale histogram ``hist_name`` to expected events and write it (same name) to ROOT file ``out_file``."""
    factor = scale_factor(xsec_pb, luminosity_fb_inv, sumweights, kfactor, filterfactor)
    raw = read_histogram(input_file, hist_name)
    out = Path(out_file)
    if out.resolve() == Path(input_file).resolve():
        raise AnalysisError(f"{out}: output file must differ from the input file")
    axis = hist.axis.Variable(raw.edges, name="x", label=raw.axis_title or "x")
    scaled = hist.Hist(axis, storage=hist.storage.Weight())
    variances = raw.variances if raw.variances is not None else raw.values  # Poisson if no Σw² stored
    scaled.view().value = raw.values * factor
    scaled.view().variance = variances * factor**2
    out.parent.mkdir(parents=True, exist_ok=True)
    name = hist_name.split(";")[0]
    with uproot.recreate(out) as f:
        f[name] = scaled
    result = ScaleResult(
        scale_factor=factor,
        cross_section_pb=float(xsec_pb),
        luminosity_fb_inv=float(luminosity_fb_inv),
        luminosity_pb_inv=float(luminosity_fb_inv) * PB_INV_PER_FB_INV,
        k_factor=float(kfactor),
        filter_efficiency=float(filterfactor),
        sum_of_weights=float(sumweights),
        histogram=name,
        input_file=str(input_file),
        output_file=str(out),
        raw_integral=float(np.sum(raw.values)),
        scaled_integral=float(np.sum(raw.values) * factor),
    )
    out.with_suffix(".json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return result
