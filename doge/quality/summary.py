"""The headline figures of stored evaluations, without torch: what ``doge gap compare`` and
``doge serve`` show."""

from __future__ import annotations


def summary(record: dict) -> dict:
    """The headline figures of an evaluation record: what ``doge gap compare`` tabulates."""
    transfer, stab = record.get("transfer", {}), record.get("stability", {})
    return {
        "gap": record.get("gap"),
        "estimator": record.get("estimator"),
        "best_weight": transfer.get("best_weight"),
        "accuracy_at_best": transfer.get("accuracy_at_best"),
        "centroid_ratio_at_best": transfer.get("centroid_ratio_at_best"),
        "domain_accuracy": transfer.get("domain_accuracy"),
        "stability_cosine": stab.get("cosine_mean"),
        "images_needed": stab.get("images_needed"),
        "source_images": record.get("source", {}).get("images"),
        "target_images": record.get("target", {}).get("images"),
        "best_estimator": record.get("estimators", {}).get("best"),
        "evaluated_at": record.get("created_at"),
    }


def compare_rows(registry, refs) -> list[dict]:
    """The latest evaluation's headline figures for each ref (``doge gap compare --json``)."""
    rows = []
    for ref in refs:
        version = registry.resolve(ref)
        evaluations = registry.evaluations(version.ref)
        if not evaluations:
            rows.append({"gap": version.ref, "evaluated": False})
            continue
        latest = evaluations[-1]
        row = {**summary(latest), "evaluated": True}
        row["gap"] = row["gap"] or version.ref
        if latest.get("damaged"):  # a stored record another tool wrote: shown, not used
            row["damaged"] = latest["damaged"]
        rows.append(row)
    return rows


def best(evaluations: list[dict]) -> dict | None:
    """The evaluation whose best edit weight moves most shifted sources into the target domain."""
    scored = [e for e in evaluations if isinstance(summary(e).get("accuracy_at_best"), int | float)]
    return max(scored, key=lambda e: summary(e)["accuracy_at_best"], default=None)
