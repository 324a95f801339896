"""``doge gap eval`` and ``doge gap compare``: judging gaps (added to the ``doge gap`` group by cli/gap.py)."""

from __future__ import annotations

import click

from doge.cli.context import echo_json, echo_table, pass_doge_options, table_lines
from doge.cli.options import encoding_options, json_option, seed_option
from doge.quality.summary import compare_rows, summary  # imports nothing: no torch on gap show

MAX_DRAWS = 10_000  # resamples a point: the curve is steady long before


def _weights(spec: str) -> list[float]:
    from doge.errors import DogeError
    from doge.rendering.plan import sweep_weights

    try:
        return sweep_weights(spec)
    except DogeError as exc:  # the same START:STOP:COUNT as render's --sweep, under this command's flag
        raise DogeError(str(exc).replace("--sweep", "--weights", 1)) from None


@click.command("eval")
@click.argument("ref")
@click.option("--src", required=True, type=click.Path(), help="Held-out source-domain images (not the gap's own).")
@click.option("--tgt", required=True, type=click.Path(), help="Held-out target-domain images.")
@click.option(
    "--weights", "weights_spec", default="0:3:13", show_default=True, help="Edit weights to try, START:STOP:COUNT."
)
@click.option(
    "--draws",
    default=20,
    show_default=True,
    type=click.IntRange(min=2, max=MAX_DRAWS),
    help="Resamples per point of the stability curve.",
)
@click.option(
    "--estimators/--no-estimators",
    default=True,
    show_default=True,
    help="Also judge every estimator on these images (needs the gap's reference folders).",
)
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG of the evaluation here.")
@click.option("--store/--no-store", default=True, show_default=True, help="Store the evaluation on the gap version.")
@seed_option(0, "Seed for sampling images.")
@encoding_options
@json_option("Print the evaluation record as JSON.")
def eval_(ref, src, tgt, weights_spec, draws, estimators, plot, store, seed, model, runtime, as_json):
    """Judge gap REF on held-out images: transfer, stability, and which estimator does best."""
    from doge.quality.evaluate import evaluate_gap

    record = evaluate_gap(
        ref,
        src,
        tgt,
        model=model,
        weights=_weights(weights_spec),
        draws=draws,
        estimators=estimators,
        plot=plot,
        store=store,
        seed=seed,
        runtime=runtime,
    )
    if as_json:
        echo_json(record)
        return
    for line in report_lines(record):
        click.echo(line)


def report_lines(record: dict) -> list[str]:
    """The evaluation as text, a person's reading order: can we judge, does it transfer, is it stable."""
    t, s, e = record["transfer"], record["stability"], record["estimators"]
    lines = [
        f"{record['gap']} ({record.get('estimator')} gap, {record['encoder'].get('plugin')} encoder) on "
        f"{record['source']['images']} source / {record['target']['images']} target held-out images",
        f"domains: a linear classifier tells the held-out images apart {t['domain_accuracy']:.0%} of the time "
        "(cross-validated; near 50% the figures below mean little)",
        f"transfer: best w {t['best_weight']:g}: {t['accuracy_at_best']:.0%} of shifted sources classified as target; "
        f"centroid distance ratio {t['centroid_ratio_at_best']:.2f} there "
        f"(lowest {t['centroid_ratio_min']:.2f} at w={t['centroid_weight']:.2f})",
        "  w         " + " ".join(f"{w:>5g}" for w in t["weights"]),
        "  accuracy  " + " ".join(f"{a:5.2f}" for a in t["accuracy"]),
        "  centroid  " + " ".join(f"{c:5.2f}" for c in t["centroid_ratio"]),
    ]
    if "curve" in s:
        curve = ", ".join(f"{p['images']}: {p['cosine_mean']:.2f}" for p in s["curve"])
        needed = (
            f"{s['images_needed']} images per side reach cosine {s['enough_cosine']}"
            if s["images_needed"]
            else f"cosine {s['enough_cosine']} needs more images than these"
        )
        lines.append(
            f"stability ({s['pool']} images, {s['draws']} draws): cosine {s['cosine_mean']:.2f} "
            f"± {s['cosine_std']:.2f}; per side {curve}; {needed}"
        )
    else:
        lines.append(f"stability: not measured ({s.get('skipped')})")
    overlap = record["overlap"]
    if overlap.get("source") or overlap.get("target"):
        lines.append(
            f"warning: {overlap['source']} source and {overlap['target']} target held-out images were used "
            "to make the gap"
        )
    if "results" in e:
        lines.append(f"estimators on these images (best: {e['best']}):")
        rows = [
            [r["estimator"], "-", "-", "-", "-", r["error"][:60]]
            if "error" in r
            else [
                r["estimator"],
                f"{r['best_weight']:g}",
                f"{r['accuracy_at_best']:.2f}",
                f"{r['centroid_ratio_at_best']:.2f}",
                "-" if r["accuracy_at_1"] is None else f"{r['accuracy_at_1']:.2f}",
                "",
            ]
            for r in e["results"]
        ]
        lines += ["  " + row for row in table_lines(rows, ["ESTIMATOR", "BEST_W", "ACC", "CENTROID", "ACC@1", ""])]
    else:
        lines.append(f"estimators: not compared ({e.get('skipped')})")
    if record.get("plot"):
        lines.append(f"plot: {record['plot']}")
    if record.get("evaluation_id") is not None:
        lines.append(f"stored as evaluation {record['evaluation_id']} of {record['gap']}")
    return lines


def evaluation_summary_line(record: dict) -> str:
    """One line of an evaluation's headline figures, for ``doge gap show``."""
    if record.get("damaged"):
        return str(record["damaged"])
    r = summary(record)
    stability = "-" if r["stability_cosine"] is None else f"{r['stability_cosine']:.2f}"
    return (
        f"{r['evaluated_at']} on {r['source_images']}/{r['target_images']} held-out images: best w "
        f"{r['best_weight']:g}, {r['accuracy_at_best']:.0%} classified as target, centroid ratio "
        f"{r['centroid_ratio_at_best']:.2f}, stability cosine {stability}, best estimator "
        f"{r['best_estimator'] or '-'}"
    )


@click.command()
@click.argument("refs", nargs=-1, required=True)
@json_option()
@pass_doge_options
def compare(doge_options, refs, as_json):
    """Tabulate the latest evaluation of each gap REF (see doge gap eval)."""
    rows = compare_rows(doge_options.registry(), refs)
    if as_json:
        echo_json(rows)
        return

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    table = [
        [
            r["gap"],
            r.get("estimator") or "-",
            fmt(r.get("best_weight"), "g"),
            fmt(r.get("accuracy_at_best"), ".2f"),
            fmt(r.get("centroid_ratio_at_best"), ".2f"),
            fmt(r.get("stability_cosine"), ".2f"),
            f"{r.get('source_images')}/{r.get('target_images')}",
            r.get("best_estimator") or "-",
            (r.get("evaluated_at") or "")[:19],
        ]
        if r["evaluated"] and not r.get("damaged")
        else [r["gap"], r["damaged"], *[""] * 7]
        if r.get("damaged")
        else [r["gap"], "not evaluated: doge gap eval REF --src DIR --tgt DIR", *[""] * 7]
        for r in rows
    ]
    echo_table(
        table, ["REF", "ESTIMATOR", "BEST_W", "ACC", "CENTROID", "STABILITY", "SRC/TGT", "BEST_EST", "EVALUATED"]
    )
