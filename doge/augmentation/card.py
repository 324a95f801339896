"""The dataset card, ``OUT/README.md``, in the Hugging Face format: a YAML header, then prose."""

from __future__ import annotations

import json
from pathlib import Path

import doge
from doge.atomic import write_atomic

TASKS = {
    "imagefolder": "image-classification",
    "webdataset": "image-classification",
    "coco": "object-detection",
    "parquet": "image-classification",
}


def load_line(summary: dict) -> str:
    """The one line of Python that loads this output as a trainer would."""
    out = json.dumps(str(summary["out"]))
    fmt = summary["format"]
    if fmt == "imagefolder":
        # datasets reads metadata.jsonl's label as a string; class_encode_column makes it a ClassLabel
        # whose names are sorted, which is the card's class order
        column = json.dumps(summary["label_column"])
        return f'datasets.load_dataset("imagefolder", data_dir={out}, split="train").class_encode_column({column})'
    if fmt == "parquet":
        return f'datasets.load_dataset("parquet", data_dir={out}, split="train")'
    if fmt == "coco":
        name = json.dumps(str(Path(summary["out"]) / summary.get("annotations_name", "annotations.json")))
        return f"pycocotools.coco.COCO({name})"
    return f"webdataset.WebDataset(sorted(glob.glob({json.dumps(str(Path(summary['out']) / 'shard-*.tar'))})))"


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def _q(text) -> str:
    return json.dumps(str(text))  # a JSON string is a valid YAML scalar, whatever it holds


def _cell(text: str) -> str:
    """A label in a Markdown table cell: pipes and backticks escaped, control characters shown."""
    return json.dumps(text)[1:-1].replace("|", "\\|").replace("`", "\\`")


def _skipped(summary: dict) -> list[str]:
    skipped = summary.get("skipped_sources") or []
    if not skipped:
        return []
    lines = [f"{len(skipped)} source images did not decode and are not in this set (nor rendered from):", ""]
    lines += [f"- `{_cell(s['file'])}`: {s['reason']}" for s in skipped[:50]]
    if len(skipped) > 50:
        lines.append(f"- ... and {len(skipped) - 50} more")
    return [*lines, ""]


def _sheets(sheets: dict[str, str]) -> list[str]:
    if not sheets:
        return []
    lines = ["## Contact sheets", "", "The first new images of each class, their labels drawn:", ""]
    for label, name in sheets.items():
        alt = _cell(label or "(no class)").replace("[", "\\[").replace("]", "\\]")
        lines += [f"### {alt}", "", f"![{alt}](<{name}>)", ""]
    return lines


def write_card(out: Path, summary: dict) -> Path:
    classes = summary["class_names"]
    total = summary["images"]
    task = "image-segmentation" if summary.get("masks") else TASKS[summary["format"]]
    header = [
        "---",
        f"pretty_name: {_q('doge augment: ' + Path(summary['out']).name)}",
        "task_categories:",
        f"- {task}",
        "size_categories:",
        f"- {_size_category(total)}",
        "tags:",
        "- synthetic",
        "- doge",
        "- domain-gap-embeddings",
        # The dataset's own facts under doge's key: a `dataset_info` block would have to describe
        # every metadata column exactly, or `datasets` ignores it with a warning.
        "doge:",
        f"  format: {summary['format']}",
        f"  label_column: {_q(summary['label_column'])}",
        f"  load: {_q(load_line(summary))}",
        "  classes:",
        *[f"  - {_q(name)}" for name in classes],
        # label -> class folder (and WebDataset key prefix); see doge.augmentation.naming
        "  class_folders:",
        *[f"  - label: {_q(name)}\n    folder: {_q(summary['class_folders'].get(name, ''))}" for name in classes],
        f"  skipped_sources: {len(summary.get('skipped_sources', []))}",
        f"  dropped_annotations: {summary.get('dropped_annotations', 0)}",
        f"  images: {total}",
        f"  generated: {summary['generated']}",
        "  gaps:",
        *[
            f"  - ref: {_q(g['ref'])}\n    sha256: {g['sha256']}\n    weight: {g['weight']:g}"
            for g in summary["gap_details"]
        ],
        "---",
        "",
    ]
    rows = [
        f"| {_cell(name) or '(none)'} | {c['sources']} | {c['asked']} | {c['made']} | {c['rejected']} "
        f"| {c.get('rejected_by_people', 0)} | {c['short']} |"
        for name, c in summary["classes"].items()
    ]
    gaps = [
        f"- `{g['ref']}` (sha256 `{g['sha256']}`), weight {g['weight']:g}"
        + (f", from {g['provenance']}" if g.get("provenance") else "")
        for g in summary["gap_details"]
    ]
    settings = json.dumps(summary["render"], indent=2, sort_keys=True)
    body = [
        f"# {Path(summary['out']).name}",
        "",
        f"A training set made by `doge augment` (doge {doge.__version__}) from {summary['src']}: "
        f"{summary['generated']} new images in the target domain"
        + (
            f" and {summary['images'] - summary['generated']} source images"
            if summary["with_sources"] != "none"
            else ""
        )
        + f", format `{summary['format']}`. Each new image is a source image whose CLIP embedding was moved "
        "along the gap(s) below and rendered with Stable unCLIP and a ControlNet that keeps its layout, "
        "so it carries its source's label (and any boxes or masks, mapped through its geometry).",
        "",
        "## Loading it",
        "",
        "```python",
        load_line(summary),
        "```",
        "",
        "## Class folders",
        "",
        "Each label's folder (imagefolder, COCO `images/`) and WebDataset key prefix. A label that is not a "
        "safe file name as it stands, or that differs from another only in case, gets its sanitised form "
        "followed by `~` and the first 8 hex digits of the sha256 of its UTF-8 bytes.",
        "",
        "| label | folder |",
        "| --- | --- |",
        *[f"| {_cell(name) or '(none)'} | {_cell(summary['class_folders'].get(name, ''))} |" for name in classes],
        "",
        *_skipped(summary),
        "## Gaps",
        "",
        *gaps,
        "",
        "## Counts per class",
        "",
        "| class | sources | asked | made | rejected by the filter | rejected by people | short |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Filter: {summary['filter'] or 'off'}. Rejected images were replaced by the next sample of the same "
        "source until the budget was met or the tries ran out ('short'). Images rejected by people are "
        "those reviewers marked in `doge serve --dataset` (kept in `doge-curation.json`); a rerun of the "
        "same command drops them and refills.",
        "",
        *_sheets(summary.get("contact_sheets") or {}),
        "## Render settings",
        "",
        "```json",
        settings,
        "```",
        "",
    ]
    if summary.get("tiny_model"):
        body += [
            "**These images come from a tiny random test model: they are noise, not training data.**",
            "",
        ]
    path = out / "README.md"
    write_atomic(path, "\n".join(header + body).encode("utf-8"))
    return path
