"""Machine learning on the AGC 4j2b region: per-event features, classifiers (GBDT default; the seed's kNN and
decision tree as baselines), held-out ROC/AUC, model persistence and a score-defined region."""

from processors.ml_model import ScoreModel, feature_matrix, load_model, scores_of

from analysis.ml.workflow import (
    CLASSIFIERS,
    DEFAULT_CLASSIFIER,
    KNN_K,
    TREE_DEPTHS,
    Evaluation,
    FeatureTable,
    TrainingResult,
    extract_features,
    make_classifier,
    read_features,
    region_plot,
    roc_plot,
    save_model,
    score_plot,
    score_region,
    select_by_score,
    train_and_evaluate,
    train_classifiers,
    write_features,
)

__all__ = [
    "CLASSIFIERS", "DEFAULT_CLASSIFIER", "KNN_K", "TREE_DEPTHS", "Evaluation", "FeatureTable", "ScoreModel",
    "TrainingResult", "extract_features", "feature_matrix", "load_model", "make_classifier", "read_features",
    "region_plot", "roc_plot", "save_model", "score_plot", "score_region", "scores_of", "select_by_score",
    "train_and_evaluate", "train_classifiers", "write_features",
]
