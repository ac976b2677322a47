"""Reinterpretation step: pyhf validation vectors (ROOT-validated CLs), root-found limits, physics sanity, CLI errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import hist
import numpy as np
import pyhf
import pytest
import uproot
from threadpoolctl import threadpool_limits

from analysis.cli import main
from analysis.recast.reinterpret import (
    build_workspace,
    cls_at,
    make_workspace,
    model_and_data,
    read_histogram,
    reinterpret_histograms,
    reinterpret_workspace,
    workspace_cls,
)

VECTORS = "validation/pyhf_validation_vectors.json"


def _vectors(shared: Path) -> list[dict]:
    return json.loads((shared / VECTORS).read_text())


def _vector_names() -> list[str]:
    from tests.conftest import SHARED

    path = SHARED / VECTORS
    return [v["name"] for v in json.loads(path.read_text())] if path.is_file() else ["missing"]


@pytest.mark.parametrize("name", _vector_names())
def test_pyhf_validation_vectors(shared_dir: Path, name: str) -> None:
    """Observed and the five expected CLs of every ROOT-validated model within max(tolerance_rel, 1e-5)."""
    vec = next((v for v in _vectors(shared_dir) if v["name"] == name), None)
    if vec is None:
        pytest.skip(f"{VECTORS} not found in {shared_dir}")
    obs, exp = workspace_cls(
        vec["workspace"],
        vec["mu_test"],
        modifier_settings={"normsys": {"interpcode": vec["normsys_interpcode"]}},
        test_stat=vec["test_stat"],
        calctype=vec["calctype"],
    )
    rel = max(vec["tolerance_rel"], 1e-5)
    assert obs == pytest.approx(vec["expected_cls_obs"], rel=rel)
    assert exp == pytest.approx(vec["expected_cls_exp_band"], rel=rel)
    assert len(exp) == 5 and exp == sorted(exp)  # -2σ … +2σ ascending in CLs


# ---------------------------------------------------------------------------------------------------
# small histogram inputs written to ROOT files
# ---------------------------------------------------------------------------------------------------
EDGES = np.array([0.0, 10.0, 20.0, 30.0])


def _write(path: Path, name: str, values, variances=None, edges=EDGES) -> Path:
    """Write a TH1D (with Σw² if variances are given) to ``path`` (appending)."""
    axis = hist.axis.Variable(edges, label="m_{jj} [GeV]")
    if variances is None:
        h = hist.Hist(axis, storage=hist.storage.Double())
        h.view()[...] = np.asarray(values, float)
    else:
        h = hist.Hist(axis, storage=hist.storage.Weight())
        h.view().value = np.asarray(values, float)
        h.view().variance = np.asarray(variances, float)
    mode = uproot.update if path.exists() else uproot.recreate
    with mode(path) as f:
        f[name] = h
    return path


def _inputs(tmp: Path, data, bkg, sig, bkg_var=None) -> tuple[Path, Path]:
    """Preserved file (data + background) and a signal file."""
    pres = tmp / "external_data.root"
    if pres.exists():
        pres.unlink()
    _write(pres, "data", data)
    _write(pres, "background", bkg, bkg_var)
    sigf = tmp / "signal.root"
    if sigf.exists():
        sigf.unlink()
    _write(sigf, "h_mjj", sig)
    return pres, sigf


def test_read_histogram_uses_stored_variances(tmp_path: Path) -> None:
    """Σw² becomes the staterror data (absolute σ); without Σw² ROOT's √N errors are used (with a notice)."""
    pres, sigf = _inputs(tmp_path, [50, 60, 40], [52.0, 58.0, 41.0], [1.0, 8.0, 2.0], bkg_var=[4.0, 9.0, 16.0])
    data, bkg, sig = (read_histogram(pres, "data"), read_histogram(pres, "background"), read_histogram(sigf, "h_mjj"))
    assert bkg.sumw2_stored and not data.sumw2_stored and data.assumption is not None
    assert data.variances.tolist() == [50.0, 60.0, 40.0]  # TH1 without Sumw2: errors sqrt(content)
    spec = build_workspace(data, bkg, sig, bkg_uncertainty=0.2)
    mods = {m["type"]: m for m in spec["channels"][0]["samples"][1]["modifiers"]}
    assert mods["staterror"]["data"] == [2.0, 3.0, 4.0]
    assert mods["normsys"]["data"] == {"hi": 1.2, "lo": 0.8}
    spec_sqrt_n = build_workspace(data, read_histogram(pres, "data"), sig, bkg_uncertainty=0.0)
    assert spec_sqrt_n["channels"][0]["samples"][1]["modifiers"][0]["data"] == pytest.approx(np.sqrt([50, 60, 40]))
    spec_nostat = build_workspace(data, read_histogram(pres, "data"), sig, bkg_uncertainty=0.0, mc_stat="none")
    assert spec_nostat["channels"][0]["samples"][1]["modifiers"] == []


def test_root_found_limit_agrees_with_fine_grid_and_toms748(tmp_path: Path) -> None:
    """Root-found limits sit where CLs = 0.05 and agree with pyhf's fine linear grid scan and toms748."""
    pres, sigf = _inputs(tmp_path, [52, 61, 38], [50.0, 58.0, 41.0], [3.0, 9.0, 2.5], bkg_var=[4.0, 5.0, 3.0])
    res = reinterpret_histograms(pres, "data", pres, "background", sigf, "h_mjj", bkg_uncertainty=0.1, scan_points=15)
    spec = build_workspace(read_histogram(pres, "data"), read_histogram(pres, "background"),
                           read_histogram(sigf, "h_mjj"), bkg_uncertainty=0.1)
    model, data = model_and_data(make_workspace(spec))
    bounds = [list(b) for b in model.config.suggested_bounds()]
    bounds[model.config.poi_index] = [0.0, 2.0 * res.scan.poi_max]
    init = list(model.config.suggested_init())
    init[model.config.poi_index] = min(1.0, res.scan.poi_max)
    limits = [res.mu_upper_limit_observed, *res.mu_upper_limit_expected]
    # CLs at each limit is the 0.05 level of its own curve
    for k, mu_up in enumerate(limits):
        obs, exp = cls_at(model, data, mu_up, par_bounds=bounds, init_pars=init)
        assert [obs, *exp][k] == pytest.approx(0.05, abs=2e-6)
    # fine grid (independent pyhf implementation, linear interpolation on 81 points)
    grid = np.linspace(0.0, res.scan.poi_max, 81)
    with threadpool_limits(1):
        obs_g, exp_g = pyhf.infer.intervals.upper_limits.linear_grid_scan(
            data, model, grid, par_bounds=bounds, init_pars=init, test_stat="qtilde"
        )
    for ours, theirs in zip(limits, [obs_g, *exp_g]):
        assert ours == pytest.approx(float(theirs), rel=5e-3)  # O(h²) linear-interpolation bias of the grid
    # a fine local grid (step 0.5 % of the limit) around the observed and median expected limits
    for k, mu_up in ((0, limits[0]), (3, limits[3])):
        local = np.linspace(0.95 * mu_up, 1.05 * mu_up, 21)
        with threadpool_limits(1):
            obs_l, exp_l = pyhf.infer.intervals.upper_limits.linear_grid_scan(
                data, model, local, par_bounds=bounds, init_pars=init, test_stat="qtilde"
            )
        assert mu_up == pytest.approx(float([obs_l, *exp_l][k]), rel=1e-4)
    with threadpool_limits(1):
        obs_t, exp_t = pyhf.infer.intervals.upper_limits.toms748_scan(
            data, model, 0.1 * res.scan.poi_max, res.scan.poi_max, rtol=1e-7, par_bounds=bounds, init_pars=init,
            test_stat="qtilde",
        )
    for ours, theirs in zip(limits, [obs_t, *exp_t]):
        assert ours == pytest.approx(float(theirs), rel=1e-5)
    # the scan in results is monotone CLs from 1 at mu=0 down past the level
    assert res.scan.cls_observed[0] == pytest.approx(1.0)
    assert res.scan.cls_observed[-1] < 0.05 and max(e[4] for e in res.scan.cls_expected[-1:]) < 0.05
    assert res.mu_upper_limit_expected == sorted(res.mu_upper_limit_expected)


def test_injected_large_signal_is_not_excluded(tmp_path: Path) -> None:
    """Data = background + signal(μ=1) with S/B ~ 1: μ = 1 is allowed although its absence would exclude it."""
    bkg = np.array([40.0, 30.0, 20.0])
    sig = np.array([5.0, 35.0, 6.0])
    pres, sigf = _inputs(tmp_path, np.round(bkg + sig), bkg, sig, bkg_var=0.01 * bkg)
    res = reinterpret_histograms(pres, "data", pres, "background", sigf, "h_mjj", bkg_uncertainty=0.05, scan_points=11)
    d = res.to_dict()
    assert res.mu_upper_limit_observed > 1.3
    assert d["cls_observed_at_mu_1"] > 0.05 and d["signal_excluded_at_mu_1"] is False
    assert res.mu_upper_limit_expected[2] < 0.6  # the analysis is sensitive: median expected excludes μ=1


def test_tiny_signal_gives_huge_mu_limit(tmp_path: Path) -> None:
    """A signal of 0.05 events on 1000 background events cannot be constrained near μ = 1."""
    bkg = np.array([400.0, 350.0, 250.0])
    pres, sigf = _inputs(tmp_path, [398, 356, 247], bkg, [0.01, 0.03, 0.01], bkg_var=bkg * 0.01)
    res = reinterpret_histograms(pres, "data", pres, "background", sigf, "h_mjj", scan_points=11)
    assert res.mu_upper_limit_observed > 1000
    assert min(res.mu_upper_limit_expected) > 500
    assert res.to_dict()["cls_observed_at_mu_1"] > 0.9


def test_cli_histograms_writes_results_and_plots_and_xsec(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``ana reinterpret`` writes results.json with the issue's keys, PNG+PDF plots, and σ limits = xsec·μ."""
    pres, sigf = _inputs(tmp_path, [52, 61, 38], [50.0, 58.0, 41.0], [3.0, 9.0, 2.5], bkg_var=[4.0, 5.0, 3.0])
    out = tmp_path / "out"
    rc = main(["reinterpret", "--filedata", str(pres), "--histdata", "data", "--filebkg", str(pres), "--histbkg",
               "background", "--filesig", str(sigf), "--histsig", "h_mjj", "--outputfile", str(out / "limit.png"),
               "--plotfile", str(out / "spectrum.png"), "--bkg-uncertainty", "0.1", "--xsec", "0.25",
               "--scan-points", "11"])
    assert rc == 0
    d = json.loads((out / "results.json").read_text())
    assert len(d["mu_upper_limit_expected"]) == 5
    assert len(d["cls_scan"]["mu"]) == len(d["cls_scan"]["observed"]) == len(d["cls_scan"]["expected"]) == 11
    assert all(len(e) == 5 for e in d["cls_scan"]["expected"])
    assert d["cross_section_upper_limit_observed_pb"] == pytest.approx(0.25 * d["mu_upper_limit_observed"], rel=1e-15)
    assert d["cross_section_upper_limit_expected_pb"] == pytest.approx([0.25 * m for m in d["mu_upper_limit_expected"]])
    for stem in ("limit", "spectrum"):
        for ext in ("png", "pdf"):
            assert (out / f"{stem}.{ext}").stat().st_size > 1000
    assert "95% CL upper limit on mu" in capsys.readouterr().out


def test_workspace_mode_equals_histogram_mode_and_applies_patches(tmp_path: Path) -> None:
    """The built workspace reinterpreted as JSON (+ JSON patch, + patchset) gives the histogram-mode limits."""
    pres, sigf = _inputs(tmp_path, [52, 61, 38], [50.0, 58.0, 41.0], [3.0, 9.0, 2.5], bkg_var=[4.0, 5.0, 3.0])
    ref = reinterpret_histograms(pres, "data", pres, "background", sigf, "h_mjj", scan_points=11)
    ws_file = tmp_path / "ws.json"
    ws_file.write_text(json.dumps(ref.workspace))
    res = reinterpret_workspace(ws_file, scan_points=11)
    assert res.mu_upper_limit_observed == pytest.approx(ref.mu_upper_limit_observed, rel=1e-9)
    assert res.mu_upper_limit_expected == pytest.approx(ref.mu_upper_limit_expected, rel=1e-9)
    # background-only workspace + signal patch (HEPData style): doubling the signal halves the limit on mu
    bkg_only = json.loads(json.dumps(ref.workspace))
    signal_sample = bkg_only["channels"][0]["samples"].pop(0)
    doubled = dict(signal_sample, data=[2 * x for x in signal_sample["data"]])
    patch = [{"op": "add", "path": "/channels/0/samples/0", "value": doubled}]
    (tmp_path / "patch.json").write_text(json.dumps(patch))
    (tmp_path / "bkgonly.json").write_text(json.dumps(bkg_only))
    rc = main(["reinterpret", "--workspace", str(tmp_path / "bkgonly.json"), "--patch", str(tmp_path / "patch.json"),
               "--outputfile", str(tmp_path / "w" / "limit.png"), "--plotfile", str(tmp_path / "w" / "spec.png"),
               "--scan-points", "11"])
    assert rc == 0
    d = json.loads((tmp_path / "w" / "results.json").read_text())
    assert d["mu_upper_limit_observed"] == pytest.approx(ref.mu_upper_limit_observed / 2, rel=1e-5)
    patchset = {
        "metadata": {"references": {"hepdata": "ins0000000"}, "description": "test", "digests": {"sha256": pyhf.utils.digest(bkg_only)},
                     "labels": ["scale"]},
        "patches": [
            {"metadata": {"name": "x1", "values": [1]}, "patch": [dict(patch[0], value=signal_sample)]},
            {"metadata": {"name": "x2", "values": [2]}, "patch": patch},
        ],
        "version": "1.0.0",
    }
    res_ps = reinterpret_workspace(bkg_only, patch=patchset, patch_name="x1", scan_points=11)
    assert res_ps.mu_upper_limit_observed == pytest.approx(ref.mu_upper_limit_observed, rel=1e-5)


# ---------------------------------------------------------------------------------------------------
# user errors: exit 2 and exactly one line naming the culprit
# ---------------------------------------------------------------------------------------------------
def _hist_args(pres: Path, sigf: Path, tmp: Path, **over: str) -> list[str]:
    args = {"--filedata": str(pres), "--histdata": "data", "--filebkg": str(pres), "--histbkg": "background",
            "--filesig": str(sigf), "--histsig": "h_mjj", "--outputfile": str(tmp / "o" / "limit.png"),
            "--plotfile": str(tmp / "o" / "spectrum.png")}
    args.update(over)
    return ["reinterpret", *[x for kv in args.items() for x in kv if kv[1] is not None]]


def _bad_case(tmp: Path, case: str) -> tuple[list[str], str]:
    """Build inputs for one bad case; return the CLI args and a substring the message must contain."""
    pres, sigf = _inputs(tmp, [52, 61, 38], [50.0, 58.0, 41.0], [3.0, 9.0, 2.5])
    if case == "binning_count":
        sigf.unlink()
        _write(sigf, "h_mjj", [1.0, 2.0], edges=np.array([0.0, 10.0, 30.0]))
        return _hist_args(pres, sigf, tmp), "binning mismatch"
    if case == "binning_edges":
        sigf.unlink()
        _write(sigf, "h_mjj", [1.0, 2.0, 3.0], edges=np.array([0.0, 10.0, 25.0, 30.0]))
        return _hist_args(pres, sigf, tmp), "edge 2"
    if case == "negative_bin":
        _inputs(tmp, [52, 61, 38], [50.0, -1.0, 41.0], [3.0, 9.0, 2.5])
        return _hist_args(pres, sigf, tmp), "background: bin 1"
    if case == "nan_bin":
        _inputs(tmp, [52, 61, 38], [50.0, 58.0, 41.0], [3.0, float("nan"), 2.5])
        return _hist_args(pres, sigf, tmp), "h_mjj: bin 1"
    if case == "missing_key":
        return _hist_args(pres, sigf, tmp, **{"--histsig": "h_nope"}), "'h_nope' not found"
    if case == "missing_file":
        return _hist_args(pres, tmp / "nope.root", tmp), "nope.root: ROOT file not found"
    if case == "zero_signal":
        _inputs(tmp, [52, 61, 38], [50.0, 58.0, 41.0], [0.0, 0.0, 0.0])
        return _hist_args(pres, sigf, tmp), "zero in every bin"
    if case == "missing_flag":
        return _hist_args(pres, sigf, tmp, **{"--histbkg": None}), "missing --histbkg"
    if case == "bad_bkg_uncertainty":
        return _hist_args(pres, sigf, tmp, **{"--bkg-uncertainty": "1.5"}), "--bkg-uncertainty"
    if case == "data_without_background":
        _inputs(tmp, [52, 61, 38], [50.0, 0.0, 41.0], [3.0, 9.0, 2.5])
        return _hist_args(pres, sigf, tmp), "zero background"
    if case == "not_a_histogram":
        with uproot.recreate(sigf) as f:
            f["h_mjj"] = {"x": np.arange(3.0)}
        return _hist_args(pres, sigf, tmp), "expected a 1D histogram"
    if case == "bad_workspace":
        (tmp / "ws.json").write_text('{"channels": []}')
        return ["reinterpret", "--workspace", str(tmp / "ws.json")], "invalid pyhf workspace"
    if case == "patch_without_workspace":
        (tmp / "p.json").write_text("[]")
        return _hist_args(pres, sigf, tmp, **{"--patch": str(tmp / "p.json")}), "--patch needs --workspace"
    raise AssertionError(case)


BAD_CASES = ["binning_count", "binning_edges", "negative_bin", "nan_bin", "missing_key", "missing_file",
             "zero_signal", "missing_flag", "bad_bkg_uncertainty", "data_without_background", "not_a_histogram",
             "bad_workspace", "patch_without_workspace"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_inputs_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    """Every bad input: exit code 2, one stderr line naming the problem, no outputs written."""
    args, needle = _bad_case(tmp_path, case)
    capsys.readouterr()
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("ana reinterpret: error: ")
    assert needle in err
    assert not (tmp_path / "o").exists()


def test_poi_max_too_small_is_a_user_error(tmp_path: Path) -> None:
    """A --poi-max below the +2σ limit cannot bracket the root: one clear error rather than a wrong number."""
    from analysis.errors import UserError

    pres, sigf = _inputs(tmp_path, [52, 61, 38], [50.0, 58.0, 41.0], [3.0, 9.0, 2.5])
    with pytest.raises(UserError, match="increase --poi-max"):
        reinterpret_histograms(pres, "data", pres, "background", sigf, "h_mjj", poi_max=0.05, scan_points=5)
    assert math.isfinite(workspace_cls(build_workspace(read_histogram(pres, "data"), read_histogram(pres, "background"),
                                                       read_histogram(sigf, "h_mjj")), 1.0)[0])


def test_background_without_sumw2_has_root_sqrt_n_mc_stat(tmp_path: Path) -> None:
    """R23: a background TH1 without Sumw2 gets ROOT/HistFactory's √N MC-stat errors (with a warning), so its
    limit equals the one from the same histogram with explicit Poisson Sumw2 (observed 1.701, median 1.378)."""
    edges = np.array([1000.0, 1500.0, 2000.0, 2500.0, 3000.0])
    f = tmp_path / "preserved.root"
    bkg = [100.0, 40.0, 10.0, 2.0]
    _write(f, "data", [95.0, 41.0, 12.0, 3.0], edges=edges)
    _write(f, "background_nosumw2", bkg, edges=edges)
    _write(f, "background_poisson_sumw2", bkg, bkg, edges=edges)
    _write(f, "signal", [2.0, 6.0, 5.0, 2.0], [0.1, 0.3, 0.25, 0.1], edges=edges)
    res = {b: reinterpret_histograms(f, "data", f, b, f, "signal", scan_points=15)
           for b in ("background_nosumw2", "background_poisson_sumw2")}
    a, b = res["background_nosumw2"], res["background_poisson_sumw2"]
    assert a.mu_upper_limit_observed == pytest.approx(b.mu_upper_limit_observed, rel=1e-6)
    assert a.mu_upper_limit_expected == pytest.approx(b.mu_upper_limit_expected, rel=1e-6)
    assert a.mu_upper_limit_observed == pytest.approx(1.701, abs=0.002)
    assert a.mu_upper_limit_expected[2] == pytest.approx(1.378, abs=0.002)
    assert "sqrt(N)" in a.to_dict()["inputs"]["background_mc_stat"]


def test_twenty_bin_limits_equal_plain_pyhf(tmp_path: Path) -> None:
    """The issue's one-channel 20-bin case (benchmarks/fit_speed.py): our limits (scan + interpolating root finder)
    equal plain pyhf's ``toms748_scan`` (its own init and bounds).  Tolerance 1e-4: our fits
    start from the guarded best fit, pyhf's from the suggested init, and SLSQP stops within its tolerance (ftol
    1e-6 on −2 ln L) of the minimum from either side (the same 2–3e-5 before the interpolating root finder)."""
    rng = np.random.default_rng(3)
    edges = np.linspace(1000, 3000, 21)
    x = 0.5 * (edges[1:] + edges[:-1])
    bkg = 2000 * np.exp(-(x - 1000) / 400)
    sig = 30 * np.exp(-0.5 * ((x - 2000) / 100) ** 2)
    data = rng.poisson(bkg).astype(float)
    path = tmp_path / "recast20.root"
    with uproot.recreate(path) as f:
        for key, vals, var in (("data", data, data), ("bkg", bkg, (0.05 * bkg) ** 2), ("sig", sig, (0.1 * sig) ** 2)):
            h = hist.Hist(hist.axis.Variable(edges, name="mjj"), storage=hist.storage.Weight())
            h.view().value, h.view().variance = vals, var
            f[key] = h
    res = reinterpret_histograms(path, "data", path, "bkg", path, "sig")
    model, obs = model_and_data(make_workspace(res.workspace))
    with threadpool_limits(1):
        lim_obs, lim_exp = pyhf.infer.intervals.upper_limits.toms748_scan(obs, model, 0.1, 5.0, rtol=1e-5,
                                                                         test_stat="qtilde")
    assert res.mu_upper_limit_observed == pytest.approx(float(lim_obs), rel=1e-4)
    assert res.mu_upper_limit_expected == pytest.approx([float(e) for e in lim_exp], rel=1e-4)
    assert len(res.scan.mu) == 15 and res.scan.cls_observed[0] == pytest.approx(1.0)


def test_expected_band_from_the_asimov_fit_alone_equals_the_full_hypotest(tmp_path: Path) -> None:
    """``CLsCalculator.expected`` (one Asimov fit) returns exactly the full hypotest's expected band at any μ."""
    from analysis.stats.likelihood import Likelihood
    from analysis.stats.limits import CLsCalculator

    pres, sigf = _inputs(tmp_path, [52, 61, 38], [50.0, 58.0, 41.0], [3.0, 9.0, 2.5], bkg_var=[4.0, 5.0, 3.0])
    spec = build_workspace(read_histogram(pres, "data"), read_histogram(pres, "background"),
                           read_histogram(sigf, "h_mjj"), bkg_uncertainty=0.1)
    model, data = model_and_data(make_workspace(spec))
    with threadpool_limits(1):
        calc = CLsCalculator(Likelihood(model, data, use_jax=False))
        calc(4.0)  # the μ-independent fits happen here, as in a scan
        band = {mu: calc.expected(mu) for mu in (0.7, 2.3)}
        assert len(calc.cache) == 1  # not cached: the cache holds complete hypotests
        for mu, exp in band.items():
            full = calc(mu)
            assert exp.tolist() == full[1:].tolist()
            _, exp_pyhf = cls_at(model, data, mu, par_bounds=calc.bounds, init_pars=calc.init)
            assert exp.tolist() == pytest.approx(exp_pyhf, rel=1e-6)
