"""Built-in gap estimators: mean (the paper's), median, pca, class-mean, trimmed-mean, lda, coral."""

from doge.plugin import hookimpl


@hookimpl
def register_estimators(register):
    from doge.plugin import estimators  # doge's estimator maths import torch: loaded on first use

    register("mean", estimators.mean_gap)
    register("median", estimators.median_gap)
    register("pca", estimators.pca_gap)
    register("class-mean", estimators.class_mean_gap)
    register("trimmed-mean", estimators.trimmed_mean_gap)
    register("lda", estimators.lda_gap)
    register("coral", estimators.coral_gap)
