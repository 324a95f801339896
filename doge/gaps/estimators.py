"""The maths of gap estimators: each maps two sets of embeddings to one gap vector.

An estimator is ``fn(src: Embeddings, tgt: Embeddings, **params) -> (vector, params)``; the
returned params (defaults filled in) go into the gap's provenance. An estimator that needs
more than a vector returns ``(vector, params, extras)``, extras being named tensors stored with
the gap (``coral``'s transform; see ``doge.gaps.shifting``).
"""

from __future__ import annotations

import torch

from doge.data.embeddings import Embeddings
from doge.errors import DogeError
from doge.extras import CORAL_SOURCE_MEAN, CORAL_TRANSFORM


def mean_gap(src: Embeddings, tgt: Embeddings) -> tuple[torch.Tensor, dict]:
    """The paper's gap: mean(target) - mean(source)."""
    return tgt.vectors.mean(0) - src.vectors.mean(0), {}


def median_gap(src: Embeddings, tgt: Embeddings) -> tuple[torch.Tensor, dict]:
    """Coordinate-wise median(target) - median(source): a few outlier images barely move it.

    ``torch.median`` returns the lower of the two middle values for even counts; the midpoint is
    taken instead so that the result does not depend on the order of images.
    """
    return _midpoint_median(tgt.vectors) - _midpoint_median(src.vectors), {}


def _midpoint_median(x: torch.Tensor) -> torch.Tensor:
    return torch.quantile(x.double(), 0.5, dim=0).to(x.dtype)


def pca_gap(src: Embeddings, tgt: Embeddings) -> tuple[torch.Tensor, dict]:
    """First principal component of both sets together, as the paper's code computes it.

    A principal axis has no sign and unit length, so it is oriented from source to target (its
    dot product with the mean gap is positive) and scaled to the mean gap's length: an edit
    weight then means the same for every estimator.
    """
    both = torch.cat([src.vectors, tgt.vectors]).double()
    centred = both - both.mean(0)
    # The first right-singular vector of the centred data is the first principal axis.
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    axis = vh[0]
    mean = (tgt.vectors.mean(0) - src.vectors.mean(0)).double()
    if torch.dot(axis, mean) < 0:
        axis = -axis
    return (axis * mean.norm()).to(src.vectors.dtype), {"oriented": "source->target", "scaled_to": "mean-gap-norm"}


def class_mean_gap(src: Embeddings, tgt: Embeddings) -> tuple[torch.Tensor, dict]:
    """Mean over classes of per-class mean gaps, for folders of class folders.

    Each class shared by both sides weighs the same, however many images it has, so a class that
    dominates one folder cannot tilt the gap towards its own content.
    """
    shared = sorted(set(src.classes) & set(tgt.classes) - {""})
    if not shared:
        raise DogeError(
            "estimator 'class-mean' needs class folders with the same names under --src and --tgt "
            f"(source classes: {', '.join(src.classes) or 'none'}; target: {', '.join(tgt.classes) or 'none'}); "
            "use --estimator mean for flat folders"
        )
    per_class = [_class_mean(tgt, c) - _class_mean(src, c) for c in shared]
    return torch.stack(per_class).mean(0), {"classes": shared}


def _class_mean(emb: Embeddings, label: str) -> torch.Tensor:
    rows = [i for i, lab in enumerate(emb.labels) if lab == label]
    return emb.vectors[rows].mean(0)


def trimmed_mean_gap(src: Embeddings, tgt: Embeddings, trim: float = 0.1) -> tuple[torch.Tensor, dict]:
    """Coordinate-wise trimmed mean(target) - trimmed mean(source), dropping ``trim`` of each tail.

    Between the mean (uses every image, so one odd image pulls it) and the median (uses only the
    middle, so it throws away most of the information in small folders): the extreme values of
    each coordinate are dropped and the rest averaged. With fewer than 1/trim images per side
    nothing is dropped and it equals the mean.
    """
    if not 0 <= trim < 0.5:
        raise DogeError(f"trimmed-mean: trim must be in [0, 0.5), got {trim}")
    return _trimmed_mean(tgt.vectors, trim) - _trimmed_mean(src.vectors, trim), {"trim": trim}


def _trimmed_mean(x: torch.Tensor, trim: float) -> torch.Tensor:
    n = x.shape[0]
    k = int(n * trim)
    ordered = torch.sort(x.double(), dim=0).values
    return ordered[k : n - k].mean(0).to(x.dtype)


def lda_gap(src: Embeddings, tgt: Embeddings, shrinkage: float | str = "auto") -> tuple[torch.Tensor, dict]:
    """Fisher's discriminant direction Sw^-1 (mean_t - mean_s), scaled to the mean gap's length.

    The mean gap also moves along directions in which images of one domain already differ a lot
    from each other (content, lighting); Fisher's direction discounts those by the pooled
    within-domain covariance Sw, so it points along what separates the domains rather than
    along what varies inside them. With far fewer images than dimensions Sw is singular, so it
    is shrunk towards a multiple of the identity (``shrinkage="auto"``: Ledoit-Wolf's estimate;
    a float in [0, 1] fixes it; 1 gives back the mean gap's direction). Oriented source->target
    and scaled to the mean gap's length, so an edit weight means the same as for ``mean``.
    """
    mean = (tgt.vectors.mean(0) - src.vectors.mean(0)).double()
    centred = torch.cat([src.vectors - src.vectors.mean(0), tgt.vectors - tgt.vectors.mean(0)]).double()
    alpha = ledoit_wolf_shrinkage(centred) if shrinkage == "auto" else float(shrinkage)
    if not 0 <= alpha <= 1:
        raise DogeError(f"lda: shrinkage must be 'auto' or in [0, 1], got {shrinkage}")
    direction = _solve_shrunk(centred, alpha, mean)
    if torch.dot(direction, mean) < 0:
        direction = -direction
    vector = direction / direction.norm() * mean.norm()
    return vector.to(src.vectors.dtype), {"shrinkage": round(alpha, 6), "scaled_to": "mean-gap-norm"}


def _solve_shrunk(x: torch.Tensor, alpha: float, b: torch.Tensor) -> torch.Tensor:
    """Solve ((1 - alpha) X'X / dof + alpha * mu * I) d = b, with mu the mean variance.

    Through Woodbury's identity, on the n x n Gram matrix: n images, not D dimensions, set the
    cost, which keeps resampling (``doge gap eval``) quick at D = 1024.
    """
    n, dim = x.shape
    dof = max(n - 2, 1)
    ridge = alpha * float((x * x).sum()) / dof / dim
    scale = (1 - alpha) / dof
    if ridge <= 0:  # no shrinkage: the least-norm solution
        return torch.linalg.lstsq(scale * x.T @ x, b.unsqueeze(1)).solution.squeeze(1)
    if scale == 0:
        return b / ridge
    inner = torch.linalg.solve(ridge / scale * torch.eye(n, dtype=x.dtype) + x @ x.T, x @ b)
    return (b - x.T @ inner) / ridge


def ledoit_wolf_shrinkage(x: torch.Tensor) -> float:
    """Ledoit and Wolf's (2004) shrinkage of the covariance of centred rows ``x`` towards mu*I.

    The same estimate as scikit-learn's ``ledoit_wolf_shrinkage(assume_centered=True)``,
    computed from the n x n Gram matrix instead of D x D products.
    """
    n, dim = x.shape
    gram = x @ x.T
    sq_norms = torch.diagonal(gram)
    trace = float(sq_norms.sum()) / n  # trace of the empirical covariance X'X / n
    mu = trace / dim
    cov_sq = float((gram * gram).sum()) / n**2  # squared Frobenius norm of X'X / n
    beta = (float((sq_norms * sq_norms).sum()) / n - cov_sq) / (dim * n)
    delta = (cov_sq - 2 * mu * trace + dim * mu**2) / dim
    beta = min(beta, delta)
    return 0.0 if beta == 0 else beta / delta


def coral_gap(src: Embeddings, tgt: Embeddings, ridge: float = 1.0) -> tuple[torch.Tensor, dict, dict]:
    """The mean gap plus CORAL's map of the source covariance onto the target's.

    Some shifts change how images vary, not only where they sit: a sketch domain has less
    colour variation than photos, a blur domain less fine detail. CORAL (Sun et al., 2016)
    matches second moments too: ``f(x) = (x - mean_s) T + mean_t`` with
    ``T = Cs^-1/2 Ct^1/2`` whitens with the source covariance and recolours with the target's,
    so source embeddings mapped by ``f`` have the target's mean and covariance. Render moves an
    embedding ``x`` to ``x + w (f(x) - x)``: the identity at w=0, full CORAL at w=1, and exactly
    ``x + w * gap`` when T is the identity. The stored vector is the mean gap (what ``diff``,
    ``list`` and gap arithmetic see); ``coral.transform`` and ``coral.source_mean`` ride along.

    Few images give singular covariances: both are regularised with the same ridge,
    ``ridge`` times their mean variance, so directions that neither set spans map to themselves.
    """
    if ridge <= 0:
        raise DogeError(f"coral: ridge must be positive, got {ridge}")
    mean_s = src.vectors.double().mean(0)
    spectra = [_spectrum(src.vectors), _spectrum(tgt.vectors)]
    dim = src.vectors.shape[1]
    floor = ridge * sum(float(values.sum()) for values, _ in spectra) / (2 * dim)
    whiten = _regularised_power(*spectra[0], floor, -0.5, dim)
    recolour = _regularised_power(*spectra[1], floor, 0.5, dim)
    extras = {CORAL_TRANSFORM: (whiten @ recolour).float(), CORAL_SOURCE_MEAN: mean_s.float()}
    return mean_gap(src, tgt)[0], {"ridge": ridge}, extras


# the same vector, without the costly transform (mypy knows no attributes on functions)
coral_gap.vector_estimator = mean_gap  # type: ignore[attr-defined]


def _spectrum(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-zero eigenvalues and eigenvectors (rows) of the covariance of ``x``, from its SVD.

    n images span at most n - 1 directions; working in those keeps CORAL quick at D = 1024.
    """
    x = x.double()
    centred = x - x.mean(0)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    return singular**2 / max(x.shape[0] - 1, 1), vh


def _regularised_power(
    values: torch.Tensor, vectors: torch.Tensor, floor: float, power: float, dim: int
) -> torch.Tensor:
    """``(C + floor * I) ** power`` for C = vectors' diag(values) vectors: floor**power off C's span."""
    base = floor**power
    update = (values + floor).pow(power) - base
    return base * torch.eye(dim, dtype=torch.float64) + (vectors.T * update) @ vectors
