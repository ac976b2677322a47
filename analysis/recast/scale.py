"""Scaling step of the RECAST workflow: raw MC histogram → expected events, scale = σ·L·k·ε / Σw.

Units are explicit: σ in pb, L in fb⁻¹ (converted with 1 fb⁻¹ = 1000 pb⁻¹), k-factor and filter
efficiency dimensionless, Σw the sum of generator weights of the *whole* sample before any selection.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import logging

import numpy as np

from analysis.errors import AnalysisError
from analysis.histio import read_th1, write_th1

log = logging.getLogger(__name__)

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
    raw_flow: list[float]  # [underflow, overflow] contents before scaling (scaled with the histogram)
    sumw2_stored: bool  # False: variances were taken as the contents (√N errors, ROOT semantics)

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
    """Scale histogram ``hist_name`` to expected events and write it (same name) to ROOT file ``out_file``.

    ROOT's ``TH1::Scale`` semantics (analysis.histio): every bin including under/overflow ×factor, variances
    ×factor²; a histogram without Sumw2 has variances = contents (√N errors), which is said in a warning.
    Negative bins (negative-weight MC) are scaled as they are.
    """
    factor = scale_factor(xsec_pb, luminosity_fb_inv, sumweights, kfactor, filterfactor)
    raw = read_th1(input_file, hist_name, allow_negative=True)
    if raw.assumption:
        log.warning(raw.assumption)
    out = Path(out_file)
    if out.resolve() == Path(input_file).resolve():
        raise AnalysisError(f"{out}: output file must differ from the input file")
    name = hist_name.split(";")[0]
    write_th1(out, name, raw.scaled(factor))
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
        raw_flow=[float(raw.underflow[0]), float(raw.overflow[0])],
        sumw2_stored=raw.sumw2_stored,
    )
    out.with_suffix(".json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return result
