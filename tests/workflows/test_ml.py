"""ML part of the ttbar analysis: 4j2b features vs independent computations, classifiers, model round trip, score region."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import uproot
from scipy import stats

from analysis import ml
from analysis.errors import UserError
from analysis.agc.run import run_ttbar
from analysis.execution.runner import run_processor
from fileset.build import build_fileset
from fileset.generate.agc import generate_agc
from processors.ml_features import FEATURES, MLFeatures, score_region_hist

NOMINAL = [("ttbar", "nominal"), ("single_top_s_chan", "nominal"), ("single_top_t_chan", "nominal"),
           ("single_top_tW", "nominal"), ("wjets", "nominal")]


@pytest.fixture(scope="module")
def agc(tmp_path_factory) -> Path:
    """Nominal AGC samples, 20k events each (one file per sample)."""
    return generate_agc(tmp_path_factory.mktemp("ml_agc"), 20_000, 1, seed=11, samples=NOMINAL)


@pytest.fixture(scope="module")
def table(agc, tmp_path_factory) -> ml.FeatureTable:
    """Feature table of the nominal samples (iterative executor)."""
    return ml.extract_features(agc, tmp_path_factory.mktemp("ml_features"), executor="iterative")


@pytest.fixture(scope="module")
def trained(table, tmp_path_factory) -> tuple[ml.TrainingResult, Path]:
    """All three classifiers trained on the table; outputs in a temp dir."""
    out = tmp_path_factory.mktemp("ml_train")
    return ml.train_and_evaluate(table.path, out, seed=3), out


# ---- features ---------------------------------------------------------------------------------

def _p4(pt, eta, phi, e):
    """(px, py, pz, E) of one object."""
    return np.array([pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta), e])


def _m(v) -> float:
    """Invariant mass of a 4-vector (0 if space-like)."""
    m2 = v[3] ** 2 - v[0] ** 2 - v[1] ** 2 - v[2] ** 2
    return math.sqrt(m2) if m2 > 0 else 0.0


def test_features_match_an_event_loop(agc, table):
    """Every feature of the ttbar file recomputed event by event in plain Python from the ROOT branches."""
    path = next(Path(agc).parent.glob("ttbar__nominal__*.root"))
    t = uproot.open(path)["events"].arrays(library="np")
    expected = []
    for i in range(len(t["event"])):
        leps = [(pt, eta, phi, e) for coll in ("electron", "muon")
                for pt, eta, phi, e in zip(t[f"{coll}_pt"][i], t[f"{coll}_eta"][i], t[f"{coll}_phi"][i], t[f"{coll}_e"][i])
                if pt > 25]
        jets = [(float(pt), float(eta), float(phi), float(e), float(b)) for pt, eta, phi, e, b in
                zip(t["jet_pt"][i], t["jet_eta"][i], t["jet_phi"][i], t["jet_e"][i], t["jet_btag"][i]) if pt > 25]
        bjets = [j for j in jets if j[4] > 0.5]
        if len(leps) != 1 or len(jets) < 4 or len(bjets) < 2:
            continue
        p = [_p4(*j[:4]) for j in jets]
        best = max((c for c in itertools.combinations(range(len(jets)), 3) if max(jets[k][4] for k in c) > 0.5),
                   key=lambda c: math.hypot(*(sum(p[k] for k in c)[:2])))
        tri = sum(p[k] for k in best)
        light = [k for k, j in enumerate(jets) if j[4] <= 0.5]
        w_masses = [_m(p[a] + p[b]) for a, b in itertools.combinations(light, 2)]
        top_masses = [_m(p[k] + p[a] + p[b]) for k, j in enumerate(jets) if j[4] > 0.5
                      for a, b in itertools.combinations(light, 2)]
        lpt, leta, lphi, le = (float(x) for x in leps[0])
        lep = _p4(lpt, leta, lphi, le)
        b1, b2 = bjets[0], bjets[1]
        dphi = (b1[2] - b2[2] + math.pi) % (2 * math.pi) - math.pi
        met, mphi = float(t["met_pt"][i]), float(t["met_phi"][i])
        expected.append({
            "event": int(t["event"][i]), "m_bjj": _m(tri), "trijet_pt": math.hypot(tri[0], tri[1]),
            "trijet_max_btag": max(jets[k][4] for k in best), "lepton_pt": lpt, "lepton_abs_eta": abs(leta),
            "lead_jet_pt": max(j[0] for j in jets), "n_jets": len(jets), "n_btag": len(bjets),
            "ht": sum(j[0] for j in jets), "met_pt": met,
            "mt_w": math.sqrt(max(2 * lpt * met * (1 - math.cos(lphi - mphi)), 0.0)),
            "m_w_cand": min(w_masses, key=lambda m: abs(m - 80.4)) if w_masses else 0.0,
            "m_top_cand": min(top_masses, key=lambda m: abs(m - 172.5)) if top_masses else 0.0,
            "m_lb_min": min(_m(lep + _p4(*j[:4])) for j in bjets),
            "dr_bb": math.hypot(b1[1] - b2[1], dphi),
        })
    c = table.columns
    mine = c["dataset"] == "ttbar__nominal"
    assert int(mine.sum()) == len(expected) > 1000
    assert np.array_equal(c["event"][mine], [e["event"] for e in expected])
    for f in FEATURES:
        np.testing.assert_allclose(c[f][mine], [e[f] for e in expected], rtol=1e-9, atol=1e-7, err_msg=f)
    assert set(c) >= set(FEATURES) | {"label", "weight", "process", "dataset", "event"}
    assert np.array_equal(c["label"] == 1, c["process"] == "ttbar")


def test_mbjj_histogram_equals_ttbar_processor(agc, table, tmp_path):
    """The weighted m_bjj of the feature table fills exactly the production 4j2b histogram per process."""
    run = run_ttbar(agc, None, executor="iterative", progress=False)
    c = table.columns
    for proc in np.unique(c["process"].astype(str)):
        m = c["process"] == proc
        counts, _ = np.histogram(c["m_bjj"][m], bins=25, range=(50, 550))
        ref = run.hist[:, "4j2b", proc, "nominal"]
        norm = c["weight"][m][0]
        np.testing.assert_allclose(counts * norm, ref.values(), rtol=1e-6, atol=1e-9, err_msg=proc)
        assert int(m.sum()) == run.cutflow[f"{proc}__nominal"]["4j2b"]


def test_columns_independent_of_executor_and_chunking(agc, table):
    """Futures executor with small chunks gives the same table, row for row, as one iterative pass."""
    fs = {k: v for k, v in build_fileset(agc).items() if k.startswith(("ttbar", "single_top_s"))}
    out, _ = run_processor(fs, MLFeatures(), executor="futures", workers=2, chunksize=3_000, progress=False)
    c, ref = out["columns"], table.columns
    keep = np.isin(ref["dataset"], list(fs))
    for name in ref:
        assert np.array_equal(c[name], ref[name][keep]), name


def test_parquet_round_trip(table):
    """The parquet table reads back equal, strings as strings."""
    back = ml.read_features(table.path)
    for name, col in table.columns.items():
        assert np.array_equal(back[name], col), name
    doc = json.loads((table.path.parent / "features.json").read_text())
    assert doc["events_in_region"] == len(table)


# ---- classifiers --------------------------------------------------------------------------------

def test_gbdt_beats_seed_baselines_on_agc(trained):
    """On the AGC features the default GBDT separates ttbar better than the seed's kNN and decision tree."""
    result, out = trained
    ev = result.evaluations
    assert ev["gbdt"].auc > 0.75
    assert ev["gbdt"].auc > ev["knn"].auc + 0.02
    assert ev["gbdt"].auc > ev["tree"].auc + 0.02
    assert ev["knn"].param in ml.KNN_K and ev["tree"].param in ml.TREE_DEPTHS
    for e in ev.values():
        assert e.fpr[0] == 0 and e.tpr[-1] == 1 and np.all(np.diff(e.fpr) >= 0) and np.all(np.diff(e.tpr) >= 0)
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["default_classifier"] == "gbdt" and doc["n_test"] == result.n_test
    assert {"auc", "auc_uncertainty", "accuracy", "signal_efficiency_at_cut"} <= set(doc["classifiers"]["gbdt"])
    for stem in ("roc", "scores"):
        assert (out / f"{stem}.png").stat().st_size > 0 and (out / f"{stem}.pdf").stat().st_size > 0


def test_results_frozen_json_ready_and_written_only_on_request(trained, table, tmp_path, monkeypatch):
    """Steps return frozen results whose to_dict() is what metrics.json holds; without out_dir nothing is written."""
    result, out = trained
    doc = json.loads((out / "metrics.json").read_text())
    assert doc.pop("model").endswith("model.joblib") and doc == result.to_dict()
    assert table.to_dict()["events"] == len(table) and json.dumps(table.to_dict(), default=str)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.default.auc = 1.0
    monkeypatch.chdir(tmp_path)
    again = ml.train_and_evaluate(table.columns, classifiers=("tree",), seed=3)
    assert list(tmp_path.iterdir()) == []
    assert again.evaluations["tree"].auc == result.evaluations["tree"].auc  # same split and seed: same numbers


def test_metrics_against_independent_formulas(trained):
    """AUC = Mann–Whitney U / (n_s n_b); efficiencies and accuracy recounted from the test scores."""
    result, _ = trained
    y = result.y_test
    for e in result.evaluations.values():
        s = e.test_scores
        u = stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic
        assert e.auc == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()), rel=1e-12)
        assert e.signal_efficiency == pytest.approx(np.mean(s[y == 1] > 0.5))
        assert e.background_efficiency == pytest.approx(np.mean(s[y == 0] > 0.5))
        n_s, n_b = (y == 1).sum(), (y == 0).sum()
        assert e.accuracy == pytest.approx((e.signal_efficiency * n_s + (1 - e.background_efficiency) * n_b) / (n_s + n_b))


def test_gaussian_classes_reach_the_bayes_auc():
    """Two Gaussian classes with Mahalanobis distance Δ: optimal AUC = Φ(Δ/√2); GBDT and kNN get close."""
    rng = np.random.default_rng(5)
    n, delta = 8000, 1.3
    shift = np.array([delta / math.sqrt(3)] * 3)
    X = np.vstack([rng.normal(size=(n, 3)) + shift, rng.normal(size=(n, 3))])
    cols = {f"x{i}": X[:, i] for i in range(3)}
    cols["label"] = np.r_[np.ones(n, np.int8), np.zeros(n, np.int8)]
    cols["weight"] = np.ones(2 * n)
    res = ml.train_classifiers(cols, ["x0", "x1", "x2"], classifiers=("gbdt", "knn"), seed=2)
    bayes = stats.norm.cdf(delta / math.sqrt(2))  # 0.821
    for e in res.evaluations.values():
        assert e.auc == pytest.approx(bayes, abs=3 * e.auc_uncertainty + 0.01)
    assert res.evaluations["gbdt"].auc > 0.75


def test_model_round_trip_identical_scores(trained, table, tmp_path):
    """Saved and loaded model: bit-identical scores; the processor's score column is the same."""
    result, out = trained
    model = ml.load_model(out / "model.joblib")
    assert model.features == list(FEATURES) and model.classifier == "gbdt"
    direct = ml.scores_of(result.default.model, ml.feature_matrix(table.columns, FEATURES))
    assert np.array_equal(model.score(table.columns), direct)
    # a copy saved again scores identically too
    again = ml.load_model(ml.save_model(result.default, result.features, tmp_path / "copy.joblib"))
    assert np.array_equal(again.score(table.columns), direct)


def test_score_defined_region(agc, trained, table, tmp_path):
    """MLFeatures(model, cut): scores per event, hist = weighted m_bjj of exactly the events with score > cut."""
    _, out = trained
    cut = 0.7
    reg = ml.score_region(agc, out / "model.joblib", cut, tmp_path / "region", executor="iterative")
    c = reg.columns
    model = ml.load_model(out / "model.joblib")
    assert np.array_equal(c["score"], model.score(table.columns))
    keep = c["score"] > cut
    assert np.array_equal(keep, ml.select_by_score(table.columns, model, cut))
    assert 0 < keep.sum() < len(keep)
    h = reg.hist
    for proc in np.unique(c["process"].astype(str)):
        m = keep & (c["process"] == proc)
        if not m.any():
            assert proc not in h.axes["process"]
            continue
        counts, _ = np.histogram(c["m_bjj"][m], bins=25, range=(50, 550))
        np.testing.assert_allclose(h[:, proc].values(), counts * c["weight"][m][0], rtol=1e-12)
    doc = json.loads((tmp_path / "region" / "score_region.json").read_text())
    tt = doc["yields"]["ttbar"]
    assert tt["efficiency"] == pytest.approx(np.mean(c["score"][c["process"] == "ttbar"] > cut))
    # the cut does what it says: signal purity rises
    purity_all = c["label"].mean()
    assert c["label"][keep].mean() > purity_all
    assert (tmp_path / "region" / "score_region.png").is_file()
    # cut 0 keeps every event with a positive score
    h0 = score_region_hist(c, 0.0)
    assert h0.sum(flow=True).value == pytest.approx(float(c["weight"][c["score"] > 0].sum()))


# ---- user errors ----------------------------------------------------------------------------------

def test_user_errors(tmp_path, table):
    """Bad model file, missing column, NaN feature, one class only, bad options → one-line UserError."""
    junk = tmp_path / "junk.joblib"
    junk.write_text("not a model")
    with pytest.raises(UserError, match="junk.joblib"):
        ml.load_model(junk)
    with pytest.raises(UserError, match="not found"):
        ml.load_model(tmp_path / "missing.joblib")
    cols = {k: v for k, v in table.columns.items() if k != "dr_bb"}
    with pytest.raises(UserError, match="dr_bb"):
        ml.train_classifiers(cols)
    cols = dict(table.columns, ht=np.where(np.arange(len(table)) == 7, np.nan, table.columns["ht"]))
    with pytest.raises(UserError, match="'ht'.*row 7"):
        ml.train_classifiers(cols)
    only_signal = {k: v[table.columns["label"] == 1] for k, v in table.columns.items()}
    with pytest.raises(UserError, match="at least 20 signal and 20 background"):
        ml.train_classifiers(only_signal)
    with pytest.raises(UserError, match="unknown classifier"):
        ml.train_classifiers(table.columns, classifiers=("svm",))
    with pytest.raises(UserError, match="both a model path and a score cut"):
        MLFeatures(model_path="m.joblib")
    with pytest.raises(UserError, match="not a parquet"):
        ml.read_features(junk)


def test_cli(agc, tmp_path, monkeypatch, capsys):
    """``ana ml features|train|region`` through the real dispatcher; user errors exit 2 with one line."""
    from analysis import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", tuple(dict.fromkeys(cli.COMMAND_MODULES + ("ml",))))
    assert cli.main(["ml", "features", "--input", str(agc), "--out", str(tmp_path / "f"), "--executor", "iterative"]) == 0
    assert cli.main(["ml", "train", "--features", str(tmp_path / "f" / "features.parquet"), "--out", str(tmp_path / "t"),
                     "--classifiers", "gbdt", "tree"]) == 0
    text = capsys.readouterr().out
    assert "gbdt  AUC" in text and "tree  AUC" in text and "knn" not in text
    assert cli.main(["ml", "region", "--input", str(agc), "--out", str(tmp_path / "r"), "--executor", "iterative",
                     "--model", str(tmp_path / "t" / "model.joblib"), "--cut", "0.6"]) == 0
    assert (tmp_path / "r" / "score_region.json").is_file()
    assert cli.main(["ml", "region", "--input", str(agc), "--out", str(tmp_path / "r2"),
                     "--model", str(tmp_path / "nope.joblib"), "--cut", "0.6"]) == 2
    err = capsys.readouterr().err
    assert "nope.joblib: model file not found" in err and len(err.strip().splitlines()) == 1
