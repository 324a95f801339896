"""How many images each class gets, from which sources, with which gap and edit weight.

A budget (``--per-class``, ``--ratio``, ``--balance`` or ``--count``) becomes a number of new images
per class; a class's images cycle through its sources in path order, each pass with the next
``k``. The gaps take turns over the whole budget (``--gap A --gap B`` splits it evenly) and the edit
weights are spread over the images of each gap. Everything is a function of the sources'
paths and the budget: a rerun plans exactly the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

from doge.augmentation.options import Budget
from doge.errors import DogeError
from doge.rendering.plan import check_image_count


@dataclass(frozen=True)
class Slot:
    """One new image: source ``source`` (index into the dataset), sample ``k``, gap group ``gap``, ``weight``."""

    label: str
    source: int
    k: int
    gap: int
    weight: float


def class_targets(by_class: dict[str, list[int]], budget: Budget) -> dict[str, int]:
    """New images per class for the one budget given (at most ``MAX_IMAGES`` in all)."""
    per_class, ratio, count = budget.per_class, budget.ratio, budget.count
    targets = _targets(by_class, per_class=per_class, ratio=ratio, balance=budget.balance, count=count)
    asked = [name for name, v in (("--per-class", per_class), ("--ratio", ratio), ("--count", count)) if v is not None]
    check_image_count(sum(targets.values()), (asked or ["--balance"])[0])
    return targets


def _targets(by_class, *, per_class, ratio, balance, count) -> dict[str, int]:
    given = [name for name, v in (("--per-class", per_class), ("--ratio", ratio), ("--count", count)) if v is not None]
    if balance:
        given.append("--balance")
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        raise DogeError(f"give exactly one budget (--per-class N, --ratio R, --balance or --count N), not {what}")
    # each number was checked when the Budget was made (doge.augmentation.options)
    if per_class is not None:
        return {label: per_class for label in by_class}
    if ratio is not None:
        return {label: max(1, round(ratio * len(ix))) for label, ix in by_class.items()}
    if count is not None:
        labels = sorted(by_class)
        share, extra = divmod(count, len(labels))
        return {label: share + (i < extra) for i, label in enumerate(labels)}
    largest = max(len(ix) for ix in by_class.values())
    return {label: largest - len(ix) for label, ix in by_class.items()}


def allocate(by_class: dict[str, list[int]], targets: dict[str, int], n_gaps: int, weights: list[float]) -> list[Slot]:
    """The slots of every class: job ``j`` of a class takes source ``j % n``, sample ``j // n``."""
    slots = []
    turn = 0  # counts on across classes, so that the gaps share the whole budget evenly
    for label, sources in by_class.items():
        n = len(sources)
        for j in range(targets.get(label, 0)):
            weight = weights[(turn // n_gaps) % len(weights)]
            slots.append(Slot(label, sources[j % n], j // n, turn % n_gaps, weight))
            turn += 1
    return slots
