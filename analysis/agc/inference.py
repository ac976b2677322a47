"""Histograms → cabinetry templates → pyhf workspace → fit (MINOS), ranking, scan, goodness of fit, plots.

Every statistical step runs on the shared core :mod:`analysis.stats` (guarded fits, MINOS beside HESSE,
saturated-model χ², impacts, profile scan, and — on request — discovery significance and CLs limits);
cabinetry builds the workspace and draws the plots.
"""

from __future__ import annotations

import copy
import glob
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cabinetry
import jsonschema
import matplotlib.pyplot as plt
import numpy as np
import pyhf
import uproot
from threadpoolctl import threadpool_limits

from analysis.agc.templates import check_templates, check_workspace_finite
from analysis.errors import AnalysisError
from analysis.histio import CORRUPT_READ_ERRORS, find_unreadable_histogram
from analysis.plotting import correlation_figure, data_mc_figures, save_figure
from analysis.stats.fit import FitResult
from analysis.stats.fit import fit as core_fit
from analysis.stats.gof import GoodnessOfFit, poisson_deviance, pyhf_saturated_gof
from analysis.stats.intervals import Interval, ScanResult, interval, profile_scan
from analysis.stats.likelihood import Likelihood, pyhf_backend
from analysis.stats.limits import LimitResult
from analysis.stats.limits import upper_limit as core_upper_limit
from analysis.stats.plots import limit_figure, scan_figure
from analysis.stats.prune import Controls, apply_controls
from analysis.stats.ranking import RankingResult, impacts
from analysis.stats.significance import SignificanceResult
from analysis.stats.significance import discovery_significance as core_significance
from analysis.stats.stage import stage

log = logging.getLogger(__name__)


@dataclass
class FitOutcome:
    """Everything a fit step produced; core results plus their cabinetry views for cabinetry's plots."""

    config: dict[str, Any]
    workspace: dict[str, Any]
    model: pyhf.pdf.Model
    data: list[float]
    result: FitResult
    likelihood: Likelihood
    gof: GoodnessOfFit
    controls: Controls = field(default_factory=Controls)
    ranking: RankingResult | None = None
    scan: ScanResult | None = None
    significance: SignificanceResult | None = None
    limit: LimitResult | None = None
    plots: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: integrated luminosity (pb⁻¹) the input histograms are normalised to, from the metrics.json ``ana run``
    #: wrote with them (:func:`input_luminosity`); None when unknown — the plots then show no luminosity
    luminosity_pb: float | None = None

    @property
    def fit_results(self) -> cabinetry.fit.FitResults:
        """The best fit as ``cabinetry.fit.FitResults`` (goodness of fit = saturated-model p-value)."""
        return self.result.to_cabinetry(self.gof.p_value)

    @property
    def poi(self) -> tuple[float, float]:
        """Best-fit POI and its HESSE uncertainty."""
        i = self.model.config.poi_index
        return float(self.result.bestfit[i]), float(self.result.uncertainty[i])

    @property
    def poi_interval(self) -> Interval:
        """Best-fit POI with MINOS and HESSE uncertainties."""
        return interval(self.result, self.model.config.poi_name)


def load_config(config_path: str | Path, histograms: str | Path | None = None,
                out_dir: str | Path | None = None) -> dict[str, Any]:
    """Load and validate a cabinetry config; point InputPath at ``histograms`` and templates into ``out_dir``."""
    p = Path(config_path)
    if not p.is_file():
        raise AnalysisError(f"{p}: cabinetry config not found")
    try:
        import yaml

        config = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise AnalysisError(f"{p}: not valid YAML: {' '.join(str(err).split())}") from None
    try:
        cabinetry.configuration.validate(config)
    except jsonschema.ValidationError as err:
        where = "/".join(str(x) for x in err.absolute_path) or "<top>"
        raise AnalysisError(f"{p}: fails cabinetry's config schema at {where}: {err.message}") from None
    except (ValueError, NotImplementedError) as err:  # cabinetry's extra checks: one data sample, unique names
        raise AnalysisError(f"{p}: {err}") from None
    check_config(config, p)
    config = copy.deepcopy(config)
    if histograms is not None:
        from analysis.histio import require_root_file

        hp = require_root_file(histograms)
        pattern = config["General"]["InputPath"].split(":", 1)[1]
        config["General"]["InputPath"] = f"{hp.resolve()}:{pattern}"
    if out_dir is not None:
        config["General"]["HistogramFolder"] = str(Path(out_dir) / "templates")
    return config


def check_config(config: dict[str, Any], source: str | Path = "cabinetry config") -> None:
    """Checks of a (schema-valid) cabinetry config that cabinetry itself leaves to pyhf or to plotting time.

    The POI must be a NormFactor or a systematic the config declares (pyhf would otherwise fail with
    ``InvalidModel`` deep inside the model build), and every region's ``Binning`` must be strictly increasing.

    Raises:
        AnalysisError: one line naming the file, the key and the offending value.
    """
    poi = config["General"]["POI"]
    norm_factors = [nf["Name"] for nf in config.get("NormFactors", [])]
    systematics = [sy["Name"] for sy in config.get("Systematics", [])]
    if poi not in norm_factors and poi not in systematics:
        raise AnalysisError(f"{source}: POI {poi!r} is not a NormFactor of the config "
                            f"(declared: {', '.join(norm_factors) or 'none'})")
    for region in config["Regions"]:
        binning = region.get("Binning")
        if binning is None:
            continue
        edges = np.asarray(binning, dtype=float)
        if not np.all(np.isfinite(edges)) or not np.all(np.diff(edges) > 0):
            raise AnalysisError(f"{source}: region {region['Name']!r}: Binning {list(binning)} is not strictly "
                                "increasing")


def check_binning(config: dict[str, Any], source: str | Path = "cabinetry config") -> None:
    """Compare every region's ``Binning`` with the bin edges of its collected nominal templates.

    Run after ``cabinetry.templates.collect``: cabinetry keeps the histograms' own binning in the workspace
    and uses ``Binning`` only for plots, so a mismatch would otherwise give a fit on other bins than the
    config says (and a shape error at plotting time). Edges agree to 1e-9 relative.

    Raises:
        AnalysisError: one line naming the region, the config binning and the histogram binning.
    """
    folder = config["General"]["HistogramFolder"]
    nominal = {"Name": "Nominal"}
    for region in config["Regions"]:
        binning = region.get("Binning")
        if binning is None:
            continue
        want = np.asarray(binning, dtype=float)
        for sample in config["Samples"]:
            if not cabinetry.configuration.region_contains_sample(region, sample):
                continue
            have = np.asarray(cabinetry.histo.Histogram.from_config(folder, region, sample, nominal,
                                                                     modified=False).bins, dtype=float)
            if have.shape != want.shape or not np.allclose(have, want, rtol=1e-9, atol=0.0):
                raise AnalysisError(
                    f"{source}: region {region['Name']!r}: Binning {_edges(want)} ({len(want) - 1} bins) "
                    f"does not match the histogram binning {_edges(have)} "
                    f"({len(have) - 1} bins) of sample {sample['Name']!r}")


def _edges(edges: np.ndarray) -> str:
    """Bin edges as a short list: ``[110, 150, 190]``."""
    return "[" + ", ".join(f"{x:.12g}" for x in edges) + "]"


def _input_files(config: dict[str, Any]) -> list[str]:
    """The histogram files the config's ``InputPath`` reads (its file part, placeholders as wildcards)."""
    pattern = config["General"]["InputPath"].split(":", 1)[0]
    return sorted(glob.glob(re.sub(r"\{[^}]*\}", "*", pattern))) if "{" in pattern else [pattern]


def recorded_luminosity(histograms: str | Path) -> float | None:
    """Integrated luminosity in pb⁻¹ that ``ana run`` recorded for the histogram file ``histograms``: the
    ``luminosity_pb`` of the ``metrics.json`` in the same directory, provided that metrics.json was written for
    this very file (its ``histograms_sha256`` equals :func:`analysis.histio.file_sha256` of ``histograms``).

    Returns:
        The luminosity (finite, > 0), or ``None`` when the file or its metrics.json is missing or unreadable, the
        metrics.json belongs to another histograms file, or it records no (valid) luminosity.
    """
    from analysis.histio import file_sha256

    path = Path(histograms)
    try:
        doc = json.loads((path.parent / "metrics.json").read_text())
        if not isinstance(doc, dict) or doc.get("histograms_sha256") != file_sha256(path):
            return None
    except (OSError, ValueError):  # missing/unreadable file, invalid JSON or UTF-8
        log.debug("%s: no usable metrics.json beside it", path, exc_info=True)
        return None
    lumi = doc.get("luminosity_pb")
    if not isinstance(lumi, (int, float)) or isinstance(lumi, bool) or not np.isfinite(lumi) or lumi <= 0:
        return None
    return float(lumi)


def input_luminosity(config: dict[str, Any]) -> float | None:
    """Integrated luminosity in pb⁻¹ of the config's histogram file(s), as recorded by ``ana run`` in the
    ``metrics.json`` written with each file (:func:`recorded_luminosity`); ``None`` when a file has no such
    record or the files disagree — the fit has no other source, and a plot label must not show a guessed number."""
    values = set()
    for path in _input_files(config):
        lumi = recorded_luminosity(path)
        if lumi is None:
            return None
        values.add(lumi)
    return values.pop() if len(values) == 1 else None


def _corrupt_input_error(config: dict[str, Any]) -> AnalysisError | None:
    """One line naming the damaged histogram file and histogram behind a failed ``templates.collect``, or ``None``
    if every input file reads cleanly (the failure was not a damaged file)."""
    for path in _input_files(config):
        if Path(path).is_file():
            found = find_unreadable_histogram(path)
            if found is not None:
                return found
    return None


def required_histograms(config: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Every histogram cabinetry's template collection will read for ``config``, in its order.

    The same enumeration (``cabinetry.route.apply_to_all_templates``: regions × samples × nominal/systematic
    templates that ``histogram_is_needed``) and the same path rule (``InputPath``/``RegionPath``/``SamplePath``/
    ``VariationPath`` with overrides) as ``cabinetry.templates.collect``.

    Returns:
        ``(file, key, region name, sample name, variation)`` per histogram; variation is ``"nominal"`` or
        ``"<systematic> Up|Down"``.
    """
    from cabinetry.templates.collector import _histo_path

    general = config["General"]
    needed: list[tuple[str, str, str, str, str]] = []

    def note(region: dict, sample: dict, systematic: dict, template: str | None) -> None:
        path = _histo_path(general["InputPath"], general.get("VariationPath", ""), region, sample, systematic,
                           template)
        file, _, key = path.partition(":")
        variation = "nominal" if template is None else f"{systematic['Name']} {template}"
        needed.append((file, key.split(";")[0], region["Name"], sample["Name"], variation))

    cabinetry.route.apply_to_all_templates(config, note)
    return needed


def check_input_histograms(config: dict[str, Any], source: str | Path = "cabinetry config") -> None:
    """Before any template is read: every histogram the config needs is in its histogram file.

    ``ana run ttbar`` legitimately writes only the samples of its fileset (a study of some samples, a fileset
    without ttbar), and only ``ana fit``'s config says which ones a model needs, so this is where a missing
    sample/variation is first knowable. One line names the file, the samples and variations missing and
    example keys (cabinetry would stop at the first missing key, which for pseudodata is not the sample
    actually lacking).

    Raises:
        AnalysisError: a histogram file is missing or unreadable, or lacks histograms the config needs.
    """
    from analysis.histio import PSEUDODATA_PARTS, corrupt_file_error

    needed = required_histograms(config)
    present: dict[str, set[str]] = {}
    for file in dict.fromkeys(f for f, *_ in needed):
        if not Path(file).is_file():
            raise AnalysisError(f"histogram file not found: {file}")
        try:
            with uproot.open(file) as f:
                present[file] = set(f.keys(cycle=False))
        except CORRUPT_READ_ERRORS as err:
            raise corrupt_file_error(file, err) from None
    missing = [n for n in needed if n[1] not in present[n[0]]]
    if not missing:
        return
    data_samples = {s["Name"] for s in config["Samples"] if s.get("Data")}
    parts = []
    for file in dict.fromkeys(f for f, *_ in missing):
        by_sample: dict[str, list[tuple[str, str]]] = {}
        for f, key, _, sample, variation in missing:
            if f == file:
                by_sample.setdefault(sample, []).append((variation, key))
        described = []
        for sample, items in sorted(by_sample.items(), key=lambda kv: kv[0] in data_samples):  # data (derived) last
            variations = list(dict.fromkeys(v for v, _ in items))
            if "nominal" in variations and len(variations) > 1:
                what = f"nominal and {len(variations) - 1} variation(s)"
            else:
                what = ", ".join(variations[:3]) + (f" and {len(variations) - 3} more" if len(variations) > 3 else "")
            keys = [k for _, k in items]
            shown = ", ".join(repr(k) for k in keys[:3]) + (", …" if len(keys) > 3 else "")
            text = f"sample {sample!r} {what} ({shown})"
            if sample in data_samples and any(k.endswith("_pseudodata") for k in keys):
                made_of = " + ".join(f"{p} {v}" for p, v, _ in PSEUDODATA_PARTS)
                text += f" — pseudodata is made only from a fileset with {made_of}"
            described.append(text)
        n = sum(1 for m in missing if m[0] == file)
        parts.append(f"{file}: lacks {n} histogram(s) that {source} needs: " + "; ".join(described))
    raise AnalysisError("; ".join(parts) + " (`ana run ttbar` writes histograms only for the samples and "
                        "variations in its fileset)")


def build_workspace(config: dict[str, Any], source: str | Path = "cabinetry config") -> dict[str, Any]:
    """Collect and post-process templates, then build and validate the pyhf workspace.

    Args:
        config: validated cabinetry config (from :func:`load_config`).
        source: name of the config file for error messages.

    Raises:
        AnalysisError: missing histograms, binning that does not match the config, unfixable templates.
    """
    check_config(config, source)
    check_input_histograms(config, source)  # all missing histograms named at once, before cabinetry reads any
    try:
        cabinetry.templates.collect(config, method="uproot")
    except uproot.KeyInFileError as err:
        raise AnalysisError(f"{err.file_path}: missing histogram {err.key!r} required by the config") from None
    except FileNotFoundError as err:
        raise AnalysisError(f"histogram file not found: {err.filename or err}") from None
    except CORRUPT_READ_ERRORS:  # truncated/overwritten file: name the file and the histogram
        culprit = _corrupt_input_error(config)
        if culprit is None:
            raise  # the input reads fine: not a damaged file
        raise culprit from None
    check_binning(config, source)
    cabinetry.templates.postprocess(config)
    check_templates(config)  # names region/sample/systematic; prunes or symmetrises what would make the model NaN
    ws = cabinetry.workspace.build(config)
    check_workspace_finite(ws)  # a NaN workspace is never returned (nor saved)
    try:
        pyhf.Workspace(ws)  # validates against pyhf's JSON schema
    except pyhf.exceptions.InvalidSpecification as err:
        raise AnalysisError(f"workspace fails pyhf's schema: {err}") from None
    return ws


def _check_finite(model: pyhf.pdf.Model, data: list[float]) -> None:
    """Reject NaN/inf yields before fitting, naming the channel."""
    if not np.all(np.isfinite(data)):
        raise AnalysisError("observed data contain NaN or infinite bins")
    expected = np.asarray(model.expected_actualdata(model.config.suggested_init()))
    if not np.all(np.isfinite(expected)):
        raise AnalysisError("model prediction contains NaN or infinite bins (check the input histograms)")


def fit(config: dict[str, Any], workspace: dict[str, Any], maxiter: int | None = None, *,
        fix: Mapping[str, float] | Sequence[str] | None = None, prune: Sequence[str] = (),
        optimizer: str = "minuit", minos: bool = True) -> FitOutcome:
    """Guarded maximum-likelihood fit of the workspace (MINOS on the POI) with --fix/--prune controls.

    Raises:
        AnalysisError: non-finite inputs, unknown --fix/--prune names, or a fit that fails the guard
            ("did not converge") even after the core's retries.
    """
    spec, controls = apply_controls(workspace, fix=fix, prune=prune)
    with pyhf_backend("numpy"):
        model, data = cabinetry.model_utils.model_and_data(spec)
        _check_finite(model, data)
    lh = Likelihood(model, data)
    if maxiter is not None:
        from analysis.stats import fit as fit_module

        old = fit_module.MAX_CALLS
        fit_module.MAX_CALLS = int(maxiter)
    try:
        result = core_fit(lh, optimizer=optimizer, minos=[model.config.poi_name] if minos else ())
    finally:
        if maxiter is not None:
            fit_module.MAX_CALLS = old
    if not result.quality.valid or result.quality.stalled_at_start:
        raise AnalysisError("the maximum-likelihood fit did not converge: " + "; ".join(result.quality.warnings))
    gof = pyhf_saturated_gof(model, data, result.twice_nll)
    outcome = FitOutcome(config, spec, model, list(map(float, data)), result, lh, gof, controls)
    outcome.warnings.extend(f"fit: {w}" for w in result.quality.warnings)
    return outcome


def discovery_significance(outcome: FitOutcome) -> SignificanceResult:
    """Discovery significance Z = √q₀ (observed, and expected on Asimov data at POI = 1) from the core."""
    return core_significance(outcome.likelihood, outcome.result)


def upper_limit(outcome: FitOutcome, confidence_level: float = 0.95) -> LimitResult:
    """Observed and expected CLs upper limits on the POI (pyhf hypotest, q̃_μ) from the core."""
    return core_upper_limit(outcome.likelihood, level=1.0 - confidence_level, init=outcome.result.bestfit)


def scan_poi(outcome: FitOutcome, n_steps: int = 21, width: float = 2.5) -> ScanResult:
    """Profile-likelihood scan of the POI over the MINOS interval widened ``width`` times."""
    return profile_scan(outcome.likelihood, outcome.result, n_points=n_steps, width=width)


def rank_impacts(outcome: FitOutcome, include_staterror: bool = False, workers: int = 2) -> RankingResult:
    """Pre- and post-fit impacts of the nuisance parameters on the POI (cabinetry's definition), from the core."""
    return impacts(outcome.likelihood, outcome.result, include_staterror=include_staterror, workers=workers)


def region_chi2(outcome: FitOutcome) -> dict[str, tuple[float, int]]:
    """Post-fit Poisson deviance (saturated χ²) and bin count per channel."""
    expected = outcome.likelihood.expected_data(outcome.result.bestfit, include_auxdata=False)
    observed = np.asarray(outcome.data[: outcome.model.config.nmaindata], dtype=float)
    out, start = {}, 0
    for ch in outcome.model.config.channels:
        n = outcome.model.config.channel_nbins[ch]
        out[ch] = (poisson_deviance(expected[start:start + n], observed[start:start + n]), n)
        start += n
    return out


def fit_summary(outcome: FitOutcome) -> dict[str, Any]:
    """JSON-serialisable fit summary: parameters, MINOS/HESSE, correlations, −2lnL, χ², fit quality, derived results."""
    r = outcome.result
    poi, poi_err = outcome.poi
    iv = outcome.poi_interval
    doc: dict[str, Any] = {
        "poi": outcome.model.config.poi_name,
        "poi_bestfit": poi,
        "poi_uncertainty": poi_err,
        "poi_uncertainty_method": "HESSE (see poi_interval for MINOS)",
        "poi_interval": iv.to_dict(),
        "labels": list(r.labels),
        "bestfit": [float(x) for x in r.bestfit],
        "uncertainty": [float(x) for x in r.uncertainty],
        "minos": {k: list(v) for k, v in r.minos.items()},
        "correlation": np.asarray(r.correlation).tolist(),
        "minus_two_log_likelihood": float(r.twice_nll),
        "goodness_of_fit": outcome.gof.to_dict(),
        "goodness_of_fit_p_value": float(outcome.gof.p_value),
        "fit_quality": r.quality.to_dict(),
        "controls": outcome.controls.to_dict(),
        "warnings": list(outcome.warnings),
    }
    if outcome.significance is not None:
        doc["significance"] = outcome.significance.to_dict()
    if outcome.limit is not None:
        lim = outcome.limit
        doc["upper_limit_95cl"] = {"observed": float(lim.observed), "expected": [float(x) for x in lim.expected]}
        doc["limit"] = lim.to_dict()
    if outcome.scan is not None:
        doc["scan"] = outcome.scan.to_dict()
    if outcome.ranking is not None:
        doc["ranking"] = outcome.ranking.to_list()
    return doc


def make_plots(outcome: FitOutcome, out_dir: Path, ranking: bool = True) -> dict[str, Path]:
    """Pulls, correlations, ranking, scan, limit and pre/post-fit data/MC plots (PNG + PDF)."""
    with plt.rc_context(), pyhf_backend("numpy"):
        plt.rcdefaults()  # cabinetry draws with its own layout; another style left active would break it
        return _make_plots(outcome, out_dir, ranking)


def _make_plots(outcome: FitOutcome, out_dir: Path, ranking: bool) -> dict[str, Path]:
    """Body of :func:`make_plots`."""
    plots: dict[str, Path] = {}
    kw = {"figure_folder": out_dir, "close_figure": False, "save_figure": False}

    def keep(fig, stem: str) -> None:
        plots[stem] = save_figure(fig, out_dir, stem)[0]

    poi_name = outcome.model.config.poi_name
    fr = outcome.fit_results
    keep(cabinetry.visualize.pulls(fr, exclude=poi_name, **kw), "pulls")
    keep(correlation_figure(list(fr.labels), fr.corr_mat, keep=(poi_name,)), "correlation_matrix")
    if outcome.ranking is not None and ranking:
        drawable, left_out = outcome.ranking.finite()
        if left_out:
            outcome.warnings.append(f"ranking plot: impacts of {', '.join(left_out)} unknown (a refit at θ̂ ± Δθ "
                                    "failed the guard, see the ranking warnings): left out of the plot")
        if drawable.labels:
            keep(cabinetry.visualize.ranking(drawable.to_cabinetry(), max_pars=15, **kw), "ranking")
    if outcome.scan is not None:
        keep(scan_figure(outcome.scan), f"scan_{poi_name}")  # CL labels beside the frame, off the curve
    if outcome.limit is not None:
        keep(limit_figure(outcome.limit, poi_name, log_x=True), "limit")
    for stem, figure in fit_data_mc_figures(outcome, out_dir):
        keep(figure, stem)
    plt.close("all")
    return plots


def fit_data_mc_figures(outcome: FitOutcome, out_dir: Path | None = None) -> list[tuple[str, plt.Figure]]:
    """Pre- and post-fit data/model figures per region (``{region}_{prefit|postfit}``, figures left open).

    The run's process colours and labels, the experiment label of the run's stack plots (luminosity from the
    metrics.json written with the histograms, :attr:`FitOutcome.luminosity_pb`, or none when unknown;
    √s = 13 TeV) and, post-fit, the region's and the fit's χ².
    """
    kw = {"figure_folder": out_dir or Path("."), "close_figure": False, "save_figure": False}
    lumi_fb = outcome.luminosity_pb / 1000.0 if outcome.luminosity_pb is not None else None
    chi2 = region_chi2(outcome)
    figures = []
    for stage_name, res in (("prefit", None), ("postfit", outcome.fit_results)):
        with pyhf_backend("numpy"):
            prediction = cabinetry.model_utils.prediction(outcome.model, fit_results=res)
        with plt.rc_context():
            plt.rcdefaults()  # cabinetry's own layout, whatever style the caller left active
            items = data_mc_figures(prediction, outcome.data, outcome.config, lumi_fb=lumi_fb, **kw)
        for item in items:
            if res is not None:
                ch = item["region"]
                dev, nb = chi2.get(ch, chi2.get(ch.replace(" ", "_"), (float("nan"), 0)))
                g = outcome.gof
                item["figure"].axes[0].text(
                    0.03, 0.72, f"region: χ² = {dev:.1f} / {nb} bins\nfit: χ²/ndf = {g.chi2:.1f}/{g.ndf}, "
                    f"p = {g.p_value:.2f}", transform=item["figure"].axes[0].transAxes, fontsize=9, va="top")
            figures.append((f"{item['region'].replace(' ', '_')}_{stage_name}", item["figure"]))
    return figures


def run_fit(config_path: str | Path, histograms: str | Path, out_dir: str | Path, *, ranking: bool = True,
            scan: bool = True, significance: bool = False, limit: bool = False, plots: bool = True,
            maxiter: int | None = None, fix: Mapping[str, float] | Sequence[str] | None = None,
            prune: Sequence[str] = (), optimizer: str = "minuit", quiet: bool = True,
            verbose: bool = False, workers: int = 2) -> FitOutcome:
    """The full ``ana fit`` step: workspace.json, fit_results.json and plots under ``out_dir``.

    A measurement gets fit + MINOS on the POI, saturated-model goodness of fit, pulls, correlations, impacts
    and the profile scan; discovery significance and CLs limits only when asked (``significance``/``limit``).

    Args:
        maxiter: cap on Minuit's function calls per fit (default 100 000).
        fix: ``{name: value}`` or ``["name=value"]`` held fixed; prune: modifiers removed (``--prune``).
        optimizer: "minuit" or "scipy" for the first attempt of every fit.
        quiet: no stage messages; verbose: show Minuit's C++ messages instead of a summary line.
        workers: threads for the ranking fits.
    """
    # small models: multi-threaded BLAS only adds overhead (several times slower fits on busy cores)
    with threadpool_limits(1):
        return _run_fit(config_path, histograms, out_dir, ranking=ranking, scan=scan, significance=significance,
                        limit=limit, plots=plots, maxiter=maxiter, fix=fix, prune=prune, optimizer=optimizer,
                        quiet=quiet, verbose=verbose, workers=workers)


def _run_fit(config_path: str | Path, histograms: str | Path, out_dir: str | Path, *, ranking: bool,
             scan: bool, significance: bool, limit: bool, plots: bool, maxiter: int | None, fix: Any,
             prune: Sequence[str], optimizer: str, quiet: bool, verbose: bool, workers: int) -> FitOutcome:
    """Body of :func:`run_fit`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {}
    minuit: dict[str, dict[str, int]] = {}
    kw = {"quiet": quiet, "verbose": verbose, "timing": timing, "minuit": minuit}

    config = load_config(config_path, histograms, out)
    with stage("workspace", **kw):
        ws = build_workspace(config, config_path)
    cabinetry.workspace.save(ws, out / "workspace.json")
    with stage("fit", **kw):
        outcome = fit(config, ws, maxiter, fix=fix, prune=prune, optimizer=optimizer)
    outcome.luminosity_pb = input_luminosity(config)
    if not quiet:
        for notice in outcome.controls.notices:
            print(f"note: {notice}", file=sys.stderr)
    if ranking:
        with stage("ranking", **kw):
            outcome.ranking = rank_impacts(outcome, workers=workers)
        outcome.warnings.extend(f"ranking fit failed the guard: {w}" for w in outcome.ranking.warnings)
    if scan:
        with stage("scan", **kw):
            outcome.scan = scan_poi(outcome)
        if outcome.scan.failed:
            outcome.warnings.append(f"scan: fits at {outcome.scan.failed} failed the guard (left out)")
    if significance:
        with stage("significance", **kw):
            outcome.significance = discovery_significance(outcome)
        outcome.warnings.extend(f"significance: {w}" for w in outcome.significance.warnings)
    if limit:
        try:
            with stage("limit", **kw):
                outcome.limit = upper_limit(outcome)
            outcome.warnings.extend(f"limit: {w}" for w in outcome.limit.warnings)
        except AnalysisError as err:
            outcome.warnings.append(f"upper limit not determined: {err}")
    iv = outcome.poi_interval
    if iv.hesse_minos_differ:
        outcome.warnings.append(f"HESSE ({iv.hesse:.3g}) and MINOS ({iv.minos_lower:+.3g}/{iv.minos_upper:+.3g}) "
                                f"uncertainties of {iv.name} differ by more than 20 %: quote MINOS")
    if plots:
        with stage("plots", **kw):
            outcome.plots = make_plots(outcome, out, ranking)
    outcome.summary = fit_summary(outcome)
    outcome.summary["timing_s"] = timing
    outcome.summary["minuit_messages"] = minuit
    (out / "fit_results.json").write_text(json.dumps(outcome.summary, indent=2) + "\n")
    return outcome
