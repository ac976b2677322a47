"""Unit truths for the reweighting pieces: safe expression parser, spline algebra, adaptive binning, config errors."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.cli import main
from analysis.errors import UserError
from analysis.reweighting.binning import adaptive_groups
from analysis.reweighting.config import load_config
from analysis.reweighting.spline import fit_spline
from fileset.expr import parse


@pytest.mark.parametrize("text", ["__import__('os')", "HT.__class__", "'a'", "lambda: 1", "[1][0]", "open('x')",
                                  "os.system('ls')", "HT if nJets else 1", "foo + 1", "True", "exp(x=1)"])
def test_parser_rejects_non_numeric_code(text):
    with pytest.raises(UserError):
        parse(text, {"HT", "nJets"})


def test_parser_evaluates_numbers():
    f = parse("1.2 - 4e-4*HT + 0.02*(nJets-5) + -min(HT, 100)/1e3 + sqrt(4)**2 - exp(log(2))", {"HT", "nJets"})
    ht, nj = np.array([100.0, 500.0]), np.array([5, 8])
    expected = 1.2 - 4e-4 * ht + 0.02 * (nj - 5) - np.minimum(ht, 100) / 1e3 + 4.0 - 2.0
    np.testing.assert_allclose(f(HT=ht, nJets=nj), expected, rtol=1e-14)
    assert np.isinf(parse("9**9**9", set())())  # float arithmetic: overflows, never hangs
    sel = parse("nJets >= 5 and not HT < 200 or nJets == 2", {"HT", "nJets"}, allow_logic=True)
    assert sel(HT=np.array([300.0, 100.0, 0.0]), nJets=np.array([5, 6, 2])).tolist() == [True, False, True]
    with pytest.raises(UserError):
        parse("HT > 1", {"HT"})  # comparisons only where logic is allowed


def test_cli_rejects_unsafe_injection(tmp_path, capsys):
    assert main(["generate", "agc", "--out", str(tmp_path), "--events-per-file", "10", "--files-per-sample", "1",
                 "--inject-ht", "__import__('os').system('true')"]) == 2
    assert "not allowed" in capsys.readouterr().err
    assert not (tmp_path / "ntuples.json").exists()


def _moments(x, w, edges):
    idx = np.searchsorted(edges, x, side="right") - 1
    t = x - edges[idx]
    n = len(edges) - 1
    return [np.bincount(idx, weights=w * t**p, minlength=n) for p in range(3)], idx


def test_spline_reproduces_global_quadratic_and_preserves_integrals():
    rng = np.random.default_rng(3)
    edges = np.array([200.0, 260.0, 300.0, 380.0, 500.0, 800.0])
    x = rng.uniform(200, 800, 5000)
    w = rng.uniform(0.5, 2.0, x.size)
    truth = lambda v: 1.5 - 2e-3 * v + 1.5e-6 * v * v  # noqa: E731
    (s0, s1, s2), idx = _moments(x, w, edges)
    k = np.bincount(idx, weights=w * truth(x)) / s0
    sp = fit_spline(edges, s0, s1, s2, k)
    grid = np.linspace(200, 800, 101)
    np.testing.assert_allclose(sp(grid), truth(grid), rtol=1e-10)
    # noisy targets: integrals still exact, f and f' continuous
    k2 = k * rng.normal(1, 0.05, k.size)
    sp2 = fit_spline(edges, s0, s1, s2, k2)
    np.testing.assert_allclose(np.bincount(idx, weights=w * sp2(x)), k2 * s0, rtol=1e-10)
    for i, e in enumerate(edges[1:-1]):
        left, right = sp2.coef[i], sp2.coef[i + 1]
        h = e - edges[i]
        assert abs(left[0] * h * h + left[1] * h + left[2] - right[2]) < 1e-12
        assert abs(2 * left[0] * h + left[1] - right[1]) < 1e-12
    # the linear response: band from a diagonal covariance equals brute-force finite differences
    cov = np.diag((0.05 * k2) ** 2)
    g = np.stack([fit_spline(edges, s0, s1, s2, k2 + np.eye(len(k2))[j])(grid) - sp2(grid) for j in range(len(k2))], 1)
    np.testing.assert_allclose(sp2.band(grid, cov), np.sqrt(((g * 0.05 * k2) ** 2).sum(1)), rtol=1e-8)


def test_adaptive_binning_minima():
    fine = np.arange(0, 1010, 10.0)
    ev = np.r_[np.zeros(20), np.full(60, 30.0), np.full(20, 2.0)]
    groups = adaptive_groups(fine, ev, np.ones(100), min_events=100, min_width=50)
    assert groups[0][0] == 0 and groups[-1][1] == 100
    for a, b in groups:
        assert fine[b] - fine[a] >= 50 - 1e-9 and ev[a:b].sum() >= 100
    assert all(b1 == a2 for (_, b1), (a2, _) in zip(groups, groups[1:]))


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "rw.yml"
    bad.write_text("minBinWidth: -1\nunknownKey: 3\nNormFactor_ttb: {nominal: 1.1}\n")
    with pytest.raises(UserError, match="minBinWidth.*unknownKey|unknownKey.*minBinWidth|<top>"):
        load_config(bad)
    bad.write_text("selection: \"nJets >= 5 and __import__('os')\"\n")
    with pytest.raises(UserError, match="selection"):
        load_config(bad)
    cfg = load_config(None, {"NormFactor_ttb": {"nominal": 1.1, "scaleup": 0.9}})
    assert cfg["minEvents"] == 200 and cfg["NormFactor_ttb"]["scaleup"] == 0.9


def test_smoothing_config_errors_name_the_key():
    with pytest.raises(UserError, match="bounds"):
        load_config(None, {"bounds": [1.5, 5.0]})
    with pytest.raises(UserError, match="method"):
        load_config(None, {"method": "spline"})
    with pytest.raises(UserError, match="targetRelError"):
        load_config(None, {"targetRelError": -0.1})
    cfg = load_config(None, {})
    assert (cfg["method"], cfg["orderSelection"], cfg["outOfRange"], cfg["targetRelError"]) == \
        ("polynomial", "aic_average", "hold", 0.1)


def test_precision_target_merges_bins():
    """Each closed bin reaches the relative-error target computed by hand; without a target the minima rule."""
    fine = np.arange(0, 510, 10.0)
    d = np.full(50, 40.0)  # data* 40 per fine bin, variance 80 (subtraction doubles it)
    m = np.full(50, 40.0)
    groups = adaptive_groups(fine, d, np.full(50, 100.0), 50, 10, target_rel_error=0.1, events_var=2 * d,
                             mc_sumw=m, mc_var=np.zeros(50))
    # sqrt(2/(40 n)) <= 0.1  ->  n >= 5 fine bins per group
    assert [b - a for a, b in groups] == [5] * 10
    assert len(adaptive_groups(fine, d, np.full(50, 100.0), 50, 10)) == 25


def _tiny_fileset(tmp_path, variations=("nominal", "scaleup", "ME_var")):
    """ntuples.json naming ttbar variations, three other processes and data (files never opened: checked first)."""
    import json

    entry = {"files": [{"path": "never_read.root", "nevts": 10}], "nevts_total": 10}
    doc = {"ttbar": {v: entry for v in variations},
           **{p: {"nominal": entry} for p in ("single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets",
                                              "data")}}
    path = tmp_path / "ntuples.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("text, words", [
    ("alternativeSamples: [scaleupp]\n",
     ["alternativeSamples: 'scaleupp' is not a sample of 'ttbar'", "(available: ME_var, scaleup)"]),
    ("alternativeSamples: [scaleup, PSvar]\n", ["'PSvar' is not a sample", "(available: ME_var, scaleup)"]),
    ("constSample: [ttc, ttlight, wjet]\n",
     ["constSample: 'wjet' is not a process", "single_top_tW, single_top_t_chan, ttbar, wjets)"]),
    ("dataProcess: dat\n", ["dataProcess: 'dat'", "(available: data,"]),
    ("componentProcess: tt\n", ["componentProcess: 'tt'"]),
    ("NormFactor_ttb: {nominal: 1.1, scalup: 0.9}\n",
     ["NormFactor_ttb: 'scalup' is not a sample of 'ttbar'", "(available: nominal, ME_var, scaleup)"]),
])
def test_reweight_derive_unknown_sample_names_one_line_exit_2(tmp_path, capsys, text, words):
    """Every sample name of the config must be in the fileset: one line naming it and the available ones, no work."""
    cfg = tmp_path / "rw.yml"
    cfg.write_text(text)
    rc = main(["reweight", "derive", "--fileset", str(_tiny_fileset(tmp_path)), "--config", str(cfg),
               "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "rw.yml" in err[0], err
    assert all(w in err[0] for w in words), err
    assert not (tmp_path / "out").exists()


def test_default_alternative_samples_missing_from_fileset_are_skipped():
    """Only the untouched default list is trimmed to what the fileset has; named variations are all derived."""
    from analysis.reweighting.config import check_sample_names

    doc = {p: {"nominal": {}} for p in ("ttbar", "single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets",
                                        "data")}
    doc["ttbar"].update({"scaleup": {}, "ME_var": {}})
    assert check_sample_names(load_config(), doc) == ["scaleup", "ME_var"]
    assert check_sample_names(load_config(None, {"alternativeSamples": ["ME_var"]}), doc) == ["ME_var"]
    assert check_sample_names(load_config(None, {"alternativeSamples": []}), doc) == []
