"""TtbarAnalysis: the AGC ttbar selection, observables and systematics as a coffea processor.

Selection: exactly one selected lepton (e or μ), ≥ 4 selected jets and ≥ 1 b-tag (score > threshold).
Regions: 4j1b (exactly one b-tag, observable HT = Σ jet pT) and 4j2b (≥ 2 b-tags, observable m_bjj of
the highest-pT trijet with at least one b-tag). Object definitions and thresholds depend on the input
format (``metadata["format"]``: seed-004 cuts for AGC ntuples, AGC v2 for NanoAOD, see
``processors.objects.FORMAT_CUTS``); format adapters only build the common object view, everything
below that view is shared. The physics lives in :class:`processors.ttbar_core.TtbarCore` (no coffea
import, so that a local run can skip coffea's start-up); this module adds coffea's ``ProcessorABC``.
"""

from __future__ import annotations

from coffea import processor

from processors.objects import FORMAT_CUTS, Cuts
from processors.ttbar_core import PT_VARIATIONS, REGIONS, TtbarCore, check_finite, jet_factors, make_hist, normalise

__all__ = ["Cuts", "FORMAT_CUTS", "PT_VARIATIONS", "REGIONS", "TtbarAnalysis", "TtbarCore", "check_finite",
           "jet_factors", "make_hist", "normalise"]


class TtbarAnalysis(TtbarCore, processor.ProcessorABC):
    """AGC ttbar processor (coffea ``ProcessorABC``). Output: exact per-chunk sums, turned into a Weight ``hist``
    in postprocess. See :class:`~processors.ttbar_core.TtbarCore` for the arguments and methods."""
