"""Does a gap carry held-out source embeddings into the target domain? Numbers for a range of w.

Two measures, both on held-out embeddings of each domain:

- **centroid ratio** ``|mean(shift(S, w)) - mean(T)| / |mean(S) - mean(T)|``: 1 at w=0, 0 when
  the shifted sources' centre lands on the targets' centre.
- **transfer accuracy**: the share of shifted sources that a linear domain classifier labels
  *target*. The classifier (logistic regression on L2-normalised embeddings) is fitted on the
  held-out source and target embeddings themselves, cross-fitted: each source is shifted and
  judged by a classifier fitted without it, so that no source is judged by a classifier that
  has memorised it.

A linear classifier labels anything far enough along the gap as target, so accuracy alone
would always favour the largest weight. The **best weight** maximises the accuracy less the
overshoot (how far the centroid ratio rises above 1, i.e. the shifted sources' centre ending
farther from the targets than the sources started); the smallest such weight on ties.

The classifier's own cross-validated accuracy on the unshifted embeddings (``domain_accuracy``)
says how well the held-out images tell the domains apart at all: near 0.5 the transfer
accuracy means little.
"""

from __future__ import annotations

import numpy as np

from doge.errors import DogeError
from doge.gaps.shifting import shift

DEFAULT_WEIGHTS = tuple(round(0.25 * i, 2) for i in range(13))  # 0, 0.25, ..., 3
MAX_FOLDS = 5


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def domain_classifier(src: np.ndarray, tgt: np.ndarray):
    """Logistic regression source (0) vs target (1) on L2-normalised, standardised embeddings.

    Normalising first makes the classifier judge directions, which is what CLIP-like embeddings
    encode; a shifted embedding is normalised the same way before it is judged. C=0.1 regularises
    strongly: there are far fewer images than dimensions.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    x = np.concatenate([src, tgt])
    y = np.concatenate([np.zeros(len(src)), np.ones(len(tgt))])
    model = make_pipeline(FunctionTransformer(_normalise), StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    return model.fit(x, y)


def _folds(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i::k] for i in range(k)]


def check_sizes(src: np.ndarray, tgt: np.ndarray) -> None:
    if len(src) < 2 or len(tgt) < 2:
        raise DogeError(
            f"need at least 2 images of each domain to tell them apart (got {len(src)} source, {len(tgt)} target)"
        )


class DomainJudge:
    """Cross-fitted domain classifiers over held-out embeddings, fitted once, asked about any gap.

    The held-out sources and targets are split into k folds (k <= 5); fold i's classifier is
    fitted on the other folds and judges fold i's sources, shifted by the gap.
    """

    def __init__(self, src: np.ndarray, tgt: np.ndarray, seed: int = 0):
        check_sizes(src, tgt)
        self.src, self.tgt = np.asarray(src, dtype=np.float64), np.asarray(tgt, dtype=np.float64)
        rng = np.random.default_rng(seed)
        k = min(MAX_FOLDS, len(src), len(tgt))
        self.folds = []
        recall = rejected = 0
        for s_out, t_out in zip(_folds(len(src), k, rng), _folds(len(tgt), k, rng)):
            clf = domain_classifier(np.delete(self.src, s_out, 0), np.delete(self.tgt, t_out, 0))
            self.folds.append((s_out, clf))
            recall += clf.predict(self.tgt[t_out]).sum()
            rejected += (clf.predict(self.src[s_out]) == 0).sum()
        self.target_recall = float(recall / len(tgt))
        # cross-validated accuracy of the classifier itself, on the unshifted embeddings
        self.domain_accuracy = float((recall + rejected) / (len(src) + len(tgt)))

    def transfer(self, vector, extras: dict | None = None, weights=DEFAULT_WEIGHTS) -> dict:
        """Transfer accuracy and centroid ratio of the sources shifted by the gap, per weight."""
        src, tgt = self.src, self.tgt
        vector = np.asarray(vector, dtype=np.float64)
        extras = {k: np.asarray(v, dtype=np.float64) for k, v in (extras or {}).items()}
        weights = [float(w) for w in weights]
        labelled_target = np.zeros((len(weights), len(src)))
        for s_out, clf in self.folds:
            for i, w in enumerate(weights):
                labelled_target[i, s_out] = clf.predict(shift(src[s_out], vector, w, extras))
        accuracy = labelled_target.mean(axis=1)
        ratios = [centroid_ratio(src, tgt, vector, w, extras) for w in weights]
        scores = [float(a) - overshoot(r) for a, r in zip(accuracy, ratios)]
        best = int(np.argmax(scores))  # the first, i.e. smallest, weight on ties
        c_weight = centroid_weight(src, tgt, vector, extras)
        return {
            "weights": weights,
            "accuracy": [round(float(a), 4) for a in accuracy],
            "centroid_ratio": [round(r, 4) for r in ratios],
            "best_weight": weights[best],
            "accuracy_at_best": round(float(accuracy[best]), 4),
            "score_at_best": round(scores[best], 4),
            "centroid_ratio_at_best": round(ratios[best], 4),
            "mean_accuracy": round(float(accuracy.mean()), 4),
            "centroid_weight": round(c_weight, 4),
            "centroid_ratio_min": round(centroid_ratio(src, tgt, vector, c_weight, extras), 4),
            "target_recall": round(self.target_recall, 4),
            "domain_accuracy": round(self.domain_accuracy, 4),
            "held_out": {"source": len(src), "target": len(tgt)},
        }


def transfer_curve(
    src: np.ndarray,
    tgt: np.ndarray,
    vector: np.ndarray,
    extras: dict | None = None,
    weights=DEFAULT_WEIGHTS,
    seed: int = 0,
) -> dict:
    """Transfer accuracy and centroid ratio of held-out ``src`` shifted by the gap, per weight."""
    return DomainJudge(src, tgt, seed).transfer(vector, extras, weights)


def overshoot(ratio: float) -> float:
    """How far past the target domain a shift went: a centroid ratio above 1 means the shifted
    sources' centre ended farther from the targets' centre than where the sources started."""
    return max(0.0, ratio - 1.0) if np.isfinite(ratio) else 0.0


def centroid_ratio(src, tgt, vector, weight: float, extras=None) -> float:
    before = np.linalg.norm(src.mean(0) - tgt.mean(0))
    after = np.linalg.norm(shift(src, vector, weight, extras).mean(0) - tgt.mean(0))
    return float(after / before) if before > 0 else float("nan")


def centroid_weight(src, tgt, vector, extras=None) -> float:
    """The weight that brings the shifted sources' centre closest to the targets' centre.

    A shift is affine in w, so the centre moves along a line: mean(S) + w d with
    d = mean(shift(S, 1)) - mean(S); the closest point is at w = <d, mean(T) - mean(S)> / |d|^2.
    """
    d = shift(src, vector, 1.0, extras).mean(0) - src.mean(0)
    norm = float(d @ d)
    return float(d @ (tgt.mean(0) - src.mean(0)) / norm) if norm > 0 else 0.0
