"""Monte-Carlo sample normalisation, defined once: weight per generated event = σ · L / N.

Every processor and workflow step that turns generated events into expected events uses
:func:`mc_normalisation`, so the empty-sample rule is the same everywhere and on every executor.
"""

from __future__ import annotations

import math

from fileset.errors import FilesetError

__all__ = ["mc_normalisation"]


def mc_normalisation(xsec_pb: float, lumi_pb_inv: float, n_events: float, *, sample: str = "sample") -> float:
    """Per-event weight σ[pb] · L[pb⁻¹] / N that normalises a generated sample to expected events.

    Args:
        xsec_pb: cross-section σ of the sample in pb (finite, ≥ 0).
        lumi_pb_inv: integrated luminosity L in pb⁻¹ (finite, ≥ 0).
        n_events: generated events N, or the sum of generator weights Σw for weighted samples (finite, ≥ 0).
        sample: name used in the error message.

    Returns:
        σ·L/N (dimensionless events per generated event). An empty sample (N = 0) has no events to weight
        and contributes zero: the function returns 0.0 instead of dividing by zero.

    Raises:
        FilesetError: a non-finite or negative σ, L or N (one line naming the sample).

    Formula: the AGC normalisation ``xsec * lumi / nevts`` (AGC ttbar notebook, CMS open data).
    """
    for name, value in (("cross-section", xsec_pb), ("luminosity", lumi_pb_inv), ("event count", n_events)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise FilesetError(f"{sample}: {name} must be a finite number ≥ 0 to normalise the sample, got {value!r}")
    if n_events == 0:
        return 0.0
    return float(xsec_pb) * float(lumi_pb_inv) / float(n_events)
