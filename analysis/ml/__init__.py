"""Machine learning on the AGC 4j2b region: per-event features, classifiers (GBDT default; the seed's kNN and
decision tree as baselines), held-out ROC/AUC, model persistence and a score-defined region.

One module per step, each computing only (writing when given an output directory): ``features``
(:func:`extract_features`), ``train`` (:func:`train_classifiers`), ``evaluate`` (:func:`analysis.ml.evaluate.evaluate`),
``model`` (:func:`save_model`), ``region`` (:func:`apply_model`), ``plots`` (figures from results), ``options`` (the
training options, :class:`TrainOptions`); ``workflow`` chains them as the CLI does (:func:`train_and_evaluate`,
:func:`score_region`).
"""

from processors.ml_model import ScoreModel, feature_matrix, load_model, scores_of

from analysis.ml.evaluate import SIGNAL_EFFICIENCIES, Evaluation, auc_uncertainty
from analysis.ml.features import FeatureTable, extract_features, read_features, write_features
from analysis.ml.model import save_model, select_by_score
from analysis.ml.options import TrainOptions
from analysis.ml.plots import region_plot, roc_plot, score_plot
from analysis.ml.region import apply_model, region_yields
from analysis.ml.train import CLASSIFIERS, DEFAULT_CLASSIFIER, KNN_K, TREE_DEPTHS, TrainingResult, make_classifier, \
    train_classifiers
from analysis.ml.workflow import score_region, train_and_evaluate

__all__ = [
    "CLASSIFIERS", "DEFAULT_CLASSIFIER", "KNN_K", "SIGNAL_EFFICIENCIES", "TREE_DEPTHS", "Evaluation", "FeatureTable",
    "ScoreModel", "TrainOptions", "TrainingResult", "apply_model", "auc_uncertainty", "extract_features", "feature_matrix",
    "load_model", "make_classifier", "read_features", "region_plot", "region_yields", "roc_plot", "save_model",
    "score_plot", "score_region", "scores_of", "select_by_score", "train_and_evaluate", "train_classifiers",
    "write_features",
]
