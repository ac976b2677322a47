"""TtbarCore: the AGC ttbar selection, observables and systematics, filling ``hist`` histograms (no coffea import).

``processors.ttbar.TtbarAnalysis`` is this class as a coffea ``ProcessorABC``; the execution layer's local
fast path runs :meth:`TtbarCore.process_columns` on the declared branches without importing coffea.

Selection: exactly one selected lepton (e or μ), ≥ 4 selected jets and ≥ 1 b-tag (score > threshold).
Regions: 4j1b (exactly one b-tag, observable HT = Σ jet pT) and 4j2b (≥ 2 b-tags, observable m_bjj of
the highest-pT trijet with at least one b-tag). Object definitions and thresholds depend on the input
format (``metadata["format"]``: seed-004 cuts for AGC ntuples, AGC v2 for NanoAOD, see
``processors.objects.FORMAT_CUTS``); format adapters only build the common object view, everything
below that view is shared.
"""

from __future__ import annotations

import awkward as ak
import hist
import numpy as np

from fileset.normalisation import mc_normalisation
from processors.errors import ProcessorError
from processors.accumulators import Constant, quantise
from processors.systematics import (
    btag_weight_variations,
    dataset_salt,
    flat_variation,
    jet_resolution_factors,
)
from processors.ttbar_kernels import count_jets, jet_layout, selected_jets, trijet_mass
from processors.objects import FORMAT_CUTS, BranchEvents, Cuts, ObjectView, count_per_event, object_view, view_branches
from schemas.reading import use_inflate

__all__ = ["Cuts", "FORMAT_CUTS", "TtbarCore", "check_finite", "make_hist", "normalise"]

REGIONS = ("4j1b", "4j2b")
PT_VARIATIONS = ("pt_scale_up", "pt_res_up")


def make_hist(n_bins: int = 25, lo: float = 50.0, hi: float = 550.0, storage: str = "double") -> hist.Hist:
    """Empty observable × region × process × variation histogram."""
    h = (
        hist.Hist.new.Reg(n_bins, lo, hi, name="observable", label="observable [GeV]")
        .StrCat(list(REGIONS), name="region", label="Region")
        .StrCat([], name="process", label="Process", growth=True)
        .StrCat([], name="variation", label="Systematic variation", growth=True)
    )
    return h.Weight() if storage == "weight" else h.Double()


class TtbarCore:
    """AGC ttbar processing. Output: exact per-chunk sums, turned into a Weight ``hist`` in postprocess.

    ``process(events)`` takes coffea NanoEvents (or any events object with the same collections);
    ``process_columns(columns, metadata)`` takes the declared branches as read by uproot and gives the
    same output bit for bit (both build the same :class:`~processors.objects.ObjectView`).
    """

    # hooks that receive the events object: a subclass overriding one of them gets NanoEvents (coffea path)
    process_columns_replaces = ("event_weights",)

    def __init__(self, n_bins: int = 25, lo: float = 50.0, hi: float = 550.0, cuts: Cuts | None = None,
                 inflate: str | None = None) -> None:
        """Histogram binning; ``cuts`` (if given) replaces the per-format defaults of ``FORMAT_CUTS``;
        ``inflate`` picks uproot's ZLIB inflater (None: ``isal`` when installed, see ``schemas.reading``)."""
        self.n_bins, self.lo, self.hi, self.inflate = n_bins, lo, hi, inflate
        self.per_format_cuts = cuts is None
        self.cuts = FORMAT_CUTS["ntuple"] if cuts is None else cuts

    def cuts_for(self, input_format: str) -> Cuts:
        """Selection thresholds for an input format (the explicit ``cuts`` if given)."""
        return FORMAT_CUTS.get(input_format, self.cuts) if self.per_format_cuts else self.cuts

    def columns(self, input_format: str = "ntuple") -> list[str]:
        """Input branches this processor reads for ``input_format`` (the run reads exactly these, once).

        Subclasses whose ``event_weights`` read more columns extend this list.
        """
        return view_branches(input_format, self.cuts_for(input_format))

    # ---- per chunk -------------------------------------------------------------------------
    def process_columns(self, columns: dict, metadata: dict) -> dict:
        """:meth:`process` on the declared branches of one chunk (``columns``: branch name → awkward/numpy array
        of the chunk's entries, as ``TTree.arrays(how=dict)`` returns them; ``metadata``: the chunk's metadata as
        coffea builds it). Same output as :meth:`process` on that chunk's NanoEvents."""
        return self.process(BranchEvents(columns, metadata))

    def process(self, events: ak.Array) -> dict:
        """Map the input to the common object view, then run the format-independent analysis."""
        use_inflate(getattr(self, "inflate", None))  # per worker process; lossless, bit-identical input
        input_format = events.metadata.get("format", "ntuple")
        c = self.cuts_for(input_format)
        view = object_view(events, input_format, c)
        check_finite(view, events.metadata)
        return self.process_view(events, view, c)

    def process_view(self, events: ak.Array, view: ObjectView, c: Cuts) -> dict:
        """Jet-pT variations, selection, regions, observables, weights and exact sums for one chunk.

        Only events with exactly one selected lepton and at least four jets that pass the jet cuts under
        some jet-pT variation can pass, so all jet work runs on that subset (every per-event quantity is
        computed from the event's own jets, so the subset changes no value); counting/HT and the trijet search
        are vectorised kernels, and every (region, variation) sum is one ``bincount`` of quantised weights
        (exact, so identical to a ``hist`` fill).
        """
        meta = events.metadata
        dataset, process, variation = meta["dataset"], meta["process"], meta["variation"]
        is_data = process == "data"
        norm = 1.0 if is_data else mc_normalisation(meta["xsec"], meta["lumi"], meta["nevts"], sample=dataset)
        n = view.n
        rows = np.flatnonzero(view.n_lepton == 1)
        n_one_lepton = int(rows.shape[0])
        # events with ≥ 4 quality jets (a necessary condition under every jet-pT variation), gathered once
        quality_jets = view.counts if view.jet_ok.all() else count_per_event(view.jet_ok, view.offsets)
        rows = rows[quality_jets[rows] >= 4]
        sub = view.subset(rows)
        factors = jet_factors(sub, c, dataset, variation == "nominal" and not is_data)

        counted = self.variation_observables(sub, c, factors)

        njet0, nb0 = counted["nominal"][0], counted["nominal"][1]
        n4 = int((njet0 >= 4).sum())
        out = {"nevents": {dataset: n}, "norms": {}, "cutflow": {dataset: {
            "all": n, "1 lepton": n_one_lepton, ">= 4 jets": n4,
            ">= 1 b-tag": int(((njet0 >= 4) & (nb0 >= 1)).sum()), "4j1b": int(counted["nominal"][4].sum()),
            "4j2b": int(counted["nominal"][5].sum())}}}

        sums: dict[str, np.ndarray] = {}  # variation → (2, 2 regions, n_bins + 2): sumw, sumw2
        default_weights = type(self).event_weights is TtbarCore.event_weights
        for pt_var, (njet, nb, ht, lead_pt, in_1b, in_2b, mbjj) in counted.items():
            label = variation if pt_var == "nominal" else pt_var
            if default_weights:  # weight 1, no variations: what event_weights returns, without per-event arrays
                base_w, extra = np.ones(rows.shape[0]), {}
            else:
                base_w, extra = self.event_weights(events, _scatter(njet, rows, n), _scatter(ht, rows, n))
                base_w = np.asarray(base_w, dtype=np.float64)[rows]
            for r, (mask, obs) in enumerate(((in_1b, ht), (in_2b, mbjj))):
                bins = self._axis.index(obs[mask]) + 1
                w0 = base_w[mask]
                weights = {label: w0}
                if pt_var == "nominal" and variation == "nominal" and not is_data:
                    weights.update({k: w0 * v for k, v in btag_weight_variations(lead_pt[mask], c.btag_strength).items()})
                    if process == "wjets":
                        weights.update({k: w0 * v for k, v in flat_variation(bins.shape[0], "scale_var", c.wjets_scale).items()})
                    weights.update({k: np.asarray(v, dtype=np.float64)[rows][mask] for k, v in extra.items()})
                for name, w in weights.items():
                    acc = sums.setdefault(name, np.zeros((2, len(REGIONS), self.n_bins + 2)))
                    acc[0, r] += np.bincount(bins, weights=quantise(w), minlength=self.n_bins + 2)
                    acc[1, r] += np.bincount(bins, weights=quantise(w * w), minlength=self.n_bins + 2)
        out["sumw"], out["sumw2"] = self._to_hists(process, sums)
        out["norms"] = {f"{process}/{name}": Constant(norm) for name in sums}
        return out

    def variation_observables(self, sub: ObjectView, c: Cuts,
                              factors: dict[str, np.ndarray | np.float64]) -> dict[str, tuple]:
        """Per jet-pT variation, per event of ``sub``: (njet, nb, HT, lead pT, in 4j1b, in 4j2b, m_bjj); lead pT
        (the unvaried pT of the first four selected jets, (n, 4)) only for ``"nominal"``, None for the others.

        ``factors``: per variation, a float64 array per jet of ``sub`` or one float64 for all jets (see
        :func:`jet_factors`). njet and HT are 0 for events that cannot reach ≥ 4 selected jets under any variation.
        """
        counted, layouts = {}, {}
        tagged = sub.btag > c.btag  # per jet, the same under every jet-pT variation
        for pt_var, factor in factors.items():
            # lead pT feeds the b-tag weight variations, which only the nominal jet pT carries
            lead_pt = np.zeros((sub.n, 4)) if pt_var == "nominal" else None
            selected = selected_jets(sub.pt, sub.jet_ok, factor, c.jet_pt)
            layouts[pt_var] = jet_layout(sub.offsets, selected[1], sub.jet_event)  # shared with the trijet search
            njet, nb, ht = count_jets(sub.offsets, sub.pt, sub.btag, sub.jet_ok, factor, c.jet_pt, c.btag, lead_pt,
                                      sub.jet_event, selected=selected, layout=layouts[pt_var], tagged=tagged)
            selected = (njet >= 4) & (nb >= 1)
            counted[pt_var] = (njet, nb, ht, lead_pt, selected & (nb == 1), selected & (nb >= 2))
        # four-momenta only of jets that the trijet search can select (events in 4j2b under some variation,
        # jets passing the cuts under the largest factor): the others are never read
        candidate_jets = sub.jet_ok & (sub.pt * _largest(factors) > c.jet_pt)
        _zero_impossible(counted, sub, candidate_jets)
        p4 = self._momenta(sub, np.logical_or.reduce([v[5] for v in counted.values()]), candidate_jets)
        return {pt_var: v + (trijet_mass(sub.offsets, sub.pt, *p4, sub.btag, sub.jet_ok, factors[pt_var], c.jet_pt,
                                         c.btag, v[5], sub.jet_event, layout=layouts[pt_var]),)
                for pt_var, v in counted.items()}

    @staticmethod
    def _momenta(view: ObjectView, events_mask: np.ndarray,
                 jet_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(px, py, pz, E) per jet, evaluated (numpy, float64) only for jets of events in ``events_mask`` (and in
        ``jet_mask`` if given); 0 elsewhere. E is the view's energy column as stored (the trijet kernel converts it)."""
        jets = events_mask[view.jet_event]
        if jet_mask is not None:
            jets &= jet_mask
        at = np.flatnonzero(jets)  # one index for all gathers and scatters
        px, py, pz = (np.zeros(view.pt.shape[0]) for _ in range(3))
        pt = view.pt.take(at).astype(np.float64, copy=False)
        phi = view.phi.take(at).astype(np.float64, copy=False)  # exact; the trigonometry runs in float64
        px[at] = pt * np.cos(phi)
        py[at] = pt * np.sin(phi)
        pz[at] = pt * np.sinh(view.eta.take(at).astype(np.float64, copy=False))
        return px, py, pz, view.energy

    @property
    def _axis(self) -> hist.axis.Regular:
        """The observable axis (its ``index`` is the one ``hist.fill`` uses)."""
        return hist.axis.Regular(self.n_bins, self.lo, self.hi)

    def _to_hists(self, process: str, sums: dict[str, np.ndarray]) -> tuple[hist.Hist, hist.Hist]:
        """Dense per-variation sums → (sumw, sumw2) histograms with every variation as a category."""
        names = list(sums)
        hists = []
        for k in range(2):
            h = (
                hist.Hist.new.Reg(self.n_bins, self.lo, self.hi, name="observable", label="observable [GeV]")
                .StrCat(list(REGIONS), name="region", label="Region")
                .StrCat([process] if names else [], name="process", label="Process", growth=True)
                .StrCat(names, name="variation", label="Systematic variation", growth=True)
                .Double()
            )
            if names:
                view = h.view(flow=True)
                for v, name in enumerate(names):
                    view[:, : len(REGIONS), 0, v] = sums[name][k].T
            hists.append(h)
        return hists[0], hists[1]

    def event_weights(self, events: ak.Array, njet: np.ndarray, ht: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Per-event weight on top of the normalisation, and named weight variations (absolute, per event).

        Hook for subclasses (e.g. a data-driven reweighting): the default is 1 with no variations.
        ``njet``/``ht`` (length ``len(events)``) are the selected-jet multiplicity and HT under the current
        jet variation; they are 0 for events that cannot pass (without exactly one selected lepton, or with
        fewer than four jets that pass the jet cuts under any variation).
        """
        return np.ones(len(events)), {}

    # ---- after merging ---------------------------------------------------------------------
    def postprocess(self, accumulator: dict) -> dict:
        """Add ``hist``: Weight-storage histogram normalised to cross-section × luminosity."""
        accumulator["hist"] = normalise(accumulator["sumw"], accumulator["sumw2"], accumulator["norms"])
        return accumulator


def check_finite(view: ObjectView, meta: dict) -> None:
    """NaN/inf jet kinematics are corrupt input, never silently dropped: name the quantity, file and entry."""
    for name in ("pt", "eta", "phi", "energy", "btag"):
        values = getattr(view, name)
        finite = np.isfinite(values)  # one vectorised pass in the column's own dtype (~5x cheaper than a float64 sum)
        if finite.all():
            continue
        bad = np.flatnonzero(~finite)
        event = int(np.searchsorted(view.offsets, bad[0], side="right") - 1) + int(meta.get("entrystart", 0))
        raise ProcessorError(f"{meta.get('filename', '?')}: jet {name} is {values[bad[0]]} at entry {event} "
                             f"({bad.size} non-finite value(s) in entries {meta.get('entrystart', 0)}-"
                             f"{meta.get('entrystop', '?')})")


def jet_factors(view: ObjectView, c: Cuts, dataset: str, with_variations: bool) -> dict[str, np.ndarray | np.float64]:
    """pT factors per variation: nominal, and for nominal MC samples JES up and the seeded JER smearing.

    A factor common to all jets (nominal 1, JES ``c.jes_scale``) is one ``np.float64`` (broadcast by the kernels:
    the same products as a per-jet array of that value, without the array); JER is a float64 array per jet.
    """
    factors: dict[str, np.ndarray | np.float64] = {"nominal": np.float64(1.0)}
    if with_variations:
        factors["pt_scale_up"] = np.float64(c.jes_scale)
        factors["pt_res_up"] = jet_resolution_factors(view.event_ids, view.counts, dataset_salt(dataset), c.jer_width)
    return factors


def _largest(factors: dict[str, np.ndarray | np.float64]) -> np.ndarray | np.float64:
    """Per jet, the largest pT factor over the variations (one float64 if every factor is common to all jets)."""
    values = list(factors.values())
    out = values[0]
    for v in values[1:]:
        out = np.maximum(out, v)
    return out


def _zero_impossible(counted: dict[str, tuple], sub: ObjectView, candidate_jets: np.ndarray) -> None:
    """Set njet and HT to 0 (in place) for the events of ``sub`` that cannot reach ≥ 4 selected jets under any jet-pT
    variation: fewer than 4 ``candidate_jets`` (quality mask and max-over-variations(factor)·pT > the threshold;
    rounding is monotonic, so factor·pT > threshold for any variation implies it for the largest factor), as
    :meth:`TtbarCore.event_weights` promises. Such events are in no region under any variation (njet < 4), so
    nothing else depends on them."""
    possible = count_per_event(candidate_jets, sub.offsets) >= 4
    if possible.all():
        return
    impossible = np.flatnonzero(~possible)
    for values in counted.values():
        values[0][impossible] = 0  # njet
        values[2][impossible] = 0.0  # HT


def _scatter(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """Per-event array of length ``n`` holding ``values`` at ``rows`` (0 elsewhere)."""
    out = np.zeros(n, dtype=values.dtype)
    out[rows] = values
    return out


def normalise(sumw: hist.Hist, sumw2: hist.Hist, norms: dict[str, Constant]) -> hist.Hist:
    """Combine exact sums and per-(process, variation) normalisations into a Weight histogram."""
    obs = sumw.axes["observable"]
    procs, variations = list(sumw.axes["process"]), list(sumw.axes["variation"])
    out = (
        hist.Hist.new.Reg(obs.size, obs.edges[0], obs.edges[-1], name="observable", label=obs.label)
        .StrCat(list(REGIONS), name="region", label="Region")
        .StrCat(procs, name="process", label="Process", growth=True)
        .StrCat(variations, name="variation", label="Systematic variation", growth=True)
        .Weight()
    )
    target, w, w2 = out.view(flow=True), sumw.view(flow=True), sumw2.view(flow=True)
    for pi, p in enumerate(procs):
        for vi, v in enumerate(variations):
            k = norms.get(f"{p}/{v}")
            if k is None:
                continue
            target["value"][:, :, pi, vi] = w[:, :, pi, vi] * k.value
            target["variance"][:, :, pi, vi] = w2[:, :, pi, vi] * (k.value * k.value)
    return out
