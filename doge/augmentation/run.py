"""``doge augment``: read a labelled set, plan a budget, render it with the render engine, filter and
refill, then lay the result out as a training set with its card.

The images are made by :mod:`doge.rendering` in a work area (one render folder per gap, with its
``manifest.jsonl``), so a rerun of the same command makes only what is missing, exactly like
``doge render``. The work area lies beside OUT (``.<OUT name>.doge-work``), not inside it: OUT holds
nothing but the dataset, so every loader (``ImageFolder`` included) sees only its classes.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from doge import pluginmanager, storage
from doge.atomic import make_dirs, write_atomic
from doge.augmentation.budget import Slot, allocate, class_targets
from doge.augmentation.card import write_card
from doge.augmentation.contact import write_contact_sheets
from doge.augmentation.curation import CURATION_FILE, rejected_ids
from doge.augmentation.hf import describe_source, read_any
from doge.augmentation.inputs import Dataset
from doge.augmentation.naming import class_folders
from doge.augmentation.options import Budget, DatasetInput, Layout, Refill
from doge.augmentation.outputs import (
    Item,
    check_names,
    check_out,
    parquet_features,
    source_stem,
    write_coco,
    write_imagefolder,
    write_parquet,
    write_webdataset,
)
from doge.augmentation.readback import RUN_FILE, default_work
from doge.errors import DogeError
from doge.gaps.store import load_gap, with_registry
from doge.locks import output_lock
from doge.names import parse_weighted_ref
from doge.quality.filtering import filter_outputs
from doge.registry.attachments import DATASET
from doge.rendering import manifest
from doge.rendering.batch import load_engine
from doge.rendering.plan import Job, check_unique_stems, output_stem, plan, refuse_inside_src
from doge.rendering.run import run_plan
from doge.rendering.settings import RenderSettings
from doge.runtime import Runtime, fold_keywords

log = logging.getLogger("doge")


@dataclass
class Chain:
    """A slot of the budget and its tries: the first sample, then a replacement for each rejected one."""

    slot: Slot
    ks: list[int] = field(default_factory=list)


class Samples:
    """Every slot's chain of samples: its first ``k``, then the source's next one for each image
    rejected. An image a reviewer rejected (doge serve) is passed over at once and does not use up
    ``--max-tries`` (each was a real image someone saw); one the filter rejected does."""

    def __init__(self, dataset: Dataset, groups: list[list[str]], slots: list[Slot], people: set[str]):
        self.dataset, self.groups, self.people = dataset, groups, people
        self.chains = [Chain(slot, [slot.k]) for slot in slots]
        self.next_k: dict[int, int] = {}
        for slot in slots:
            self.next_k[slot.source] = max(self.next_k.get(slot.source, 0), slot.k + 1)
        for chain in self.chains:
            self._pass_over_people(chain)

    def work_name(self, chain: Chain, k: int) -> str:
        return _work_name(self.dataset, chain.slot.source, k)

    def by_people(self, chain: Chain, k: int) -> bool:
        return image_id(self.groups[chain.slot.gap], self.work_name(chain, k)) in self.people

    def tries(self, chain: Chain) -> int:
        """The samples of ``chain`` that count against ``--max-tries``."""
        return sum(not self.by_people(chain, k) for k in chain.ks)

    def advance(self, chain: Chain) -> None:
        """Give ``chain`` the source's next sample (past any a reviewer rejected)."""
        self._next(chain)
        self._pass_over_people(chain)

    def jobs(self, gap: int) -> list[Job]:
        """Every sample of gap group ``gap``, in (source, k) order."""
        found = {
            Job(c.slot.source, k, c.slot.weight, self.work_name(c, k))
            for c in self.chains
            if c.slot.gap == gap
            for k in c.ks
        }
        return sorted(found, key=lambda j: (j.source, j.k))

    def _pass_over_people(self, chain: Chain) -> None:
        while self.by_people(chain, chain.ks[-1]):
            self._next(chain)

    def _next(self, chain: Chain) -> None:
        chain.ks.append(self.next_k[chain.slot.source])
        self.next_k[chain.slot.source] += 1


def gap_groups(gaps) -> list[list[str]]:
    """``--gap A --gap B+C:0.5`` → [[A], [B, C:0.5]]: the budget is split between groups, a group's gaps add up."""
    if isinstance(gaps, str):
        gaps = [gaps]
    groups = [[part.strip() for part in str(g).split("+") if part.strip()] for g in gaps or []]
    if not groups or not all(groups):
        raise DogeError("augment needs a gap: --gap 'real->painting' (see doge gap list)")
    return groups


def _slug(group: list[str]) -> str:
    return re.sub(r"[^a-z0-9._@=-]+", "_", "+".join(group).replace("->", "=")).strip("_")[:120]


def _work_name(dataset: Dataset, slot_source: int, k: int) -> str:
    return f"images/{output_stem(dataset.sources[slot_source].rel)}_{k}.png"


def image_id(group: list[str], work_name: str) -> str:
    """A new image's ``doge_id``: its name in the work area (``<gap folder>/images/<stem>_<k>.png``),
    the same in every output format and across reruns; reviewers' marks name images by it."""
    return f"{_slug(group)}/{work_name}"


def augment(
    src,
    gaps,
    out,
    *,
    reading: DatasetInput | None = None,
    budget: Budget | None = None,
    refill: Refill | None = None,
    layout: Layout | None = None,
    settings: RenderSettings | None = None,
    runtime: Runtime | None = None,
    dry_run: bool = False,
    **options,
) -> dict:
    """Augment the labelled set in ``src`` with images shifted by ``gaps``; returns the summary ``--json`` prints.

    ``reading`` (:class:`~doge.augmentation.options.DatasetInput`) says how ``src`` is read,
    ``budget`` (:class:`~doge.augmentation.budget.Budget`) how many images, ``refill``
    (:class:`~doge.augmentation.options.Refill`) whether they are filtered and replaced,
    ``layout`` (:class:`~doge.augmentation.options.Layout`) how OUT is written; ``settings``
    (:class:`~doge.rendering.settings.RenderSettings`) decide the pixels and ``runtime``
    (:class:`~doge.runtime.Runtime`) how and where the renders run. Any field of any of them may
    be given as a keyword instead (``per_class=50``, ``filter=True``, ``steps=20``, ``device="cpu"``).
    ``settings.edit_weight`` is the weight when ``budget.weights`` (``"1.0,1.5,2.0"``) is not given.
    """
    reading, budget, refill, layout, settings, runtime = fold_keywords(
        "augment",
        options,
        (DatasetInput, reading),
        (Budget, budget),
        (Refill, refill),
        (Layout, layout),
        (RenderSettings, settings),
        (Runtime, runtime),
    )
    out = storage.output_location(out)
    work = storage.location(layout.work) if layout.work else default_work(out)
    groups = gap_groups(gaps)
    spread = list(budget.weights) if budget.weights is not None else [float(settings.edit_weight)]
    dataset = read_any(src, reading, cache=work / "hf-sources")
    folders = _check_places(dataset, out, work, layout, dry_run)
    by_class = dataset.by_class()
    targets = class_targets(by_class, budget)
    slots = allocate(by_class, targets, len(groups), spread)
    runtime = with_registry(runtime)
    reg = runtime.registry
    details = []
    for group in groups:
        for text in group:
            ref, weight = parse_weighted_ref(text)
            gap = load_gap(str(ref), registry=reg)
            details.append({"group": "+".join(group), "ref": gap.ref, "sha256": gap.sha256, "weight": weight})
    base = {
        "out": storage.shown(out),
        "src": describe_source(src),
        "input": dataset.kind,
        "format": layout.output_format,
        "gaps": ["+".join(g) for g in groups],
        "weights": spread,
        "planned": len(slots),
        "per_gap": {"+".join(g): sum(s.gap == i for s in slots) for i, g in enumerate(groups)},
        "per_class": {label: {"sources": len(ix), "asked": targets[label]} for label, ix in by_class.items()},
        "class_folders": folders,
        "skipped_sources": dataset.skipped,
    }
    if dry_run:
        base["per_class_and_gap"] = {
            label: {"+".join(g): sum(s.label == label and s.gap == i for s in slots) for i, g in enumerate(groups)}
            for label in by_class
        }
        return {**base, "dry_run": True}

    for name in settings.controls or ():  # an unknown control is refused before OUT is made
        pluginmanager.get("controls", name)
    # One writer at a time in OUT (see doge.locks); each render work area has its own lock.
    with output_lock(out, "augment"):
        if settings.controls == ("seg",) and dataset.masks is not None and not settings.control_dir:
            settings = replace(settings, control_dir=dataset.masks)  # the label images are the seg control's maps
        local_out = not storage.is_remote(out)
        people = rejected_ids(out) if local_out else set()  # reviewers mark local folders (doge serve)
        samples = Samples(dataset, groups, slots, people)
        written, skipped, last_plans = _render_and_refill(samples, work, settings, runtime, refill)
        chains = samples.chains

        entries = {i: manifest.read(work / _slug(g) / "manifest.jsonl") for i, g in enumerate(groups)}
        items, counts = _collect(
            dataset, chains, entries, work, groups, targets, layout.with_sources, refill.filter, folders, people
        )
        make_dirs(out)
        stats = _write(out, dataset, items, layout, reading.label_column)
        generated = [it for it in items if it.generated]
        any_plan = next(iter(last_plans.values()), None)
        summary = {
            **base,
            "work": storage.shown(work),
            # where doge serve --dataset may read a source and a control map (local folders only)
            "work_dir": None if storage.is_remote(work) else str(Path(work).resolve()),
            "src_root": None if storage.is_remote(dataset.root) else str(Path(dataset.root).resolve()),
            "classes": counts,
            "class_names": dataset.classes,
            "label_column": reading.label_column,
            "annotations_name": layout.annotations_name,
            "masks": dataset.masks is not None,
            "dropped_annotations": stats["dropped_annotations"],
            "images": len(items),
            "generated": len(generated),
            "written": written,
            "skipped": skipped,
            "with_sources": layout.with_sources,
            "filter": (
                {
                    "min_target_score": refill.min_target_score,
                    "min_source_similarity": refill.min_source_similarity,
                    "max_tries": refill.max_tries,
                }
                if refill.filter
                else None
            ),
            "gap_details": details,
            "render": _settings(any_plan),
            "tiny_model": any(bool((it.entry or {}).get("tiny_model")) for it in generated),
        }
        summary["curation"] = {
            "file": CURATION_FILE if local_out and (out / CURATION_FILE).is_file() else None,
            "rejected_by_people": sum(c["rejected_by_people"] for c in counts.values()),
            "rejected_by_filter": sum(c["rejected"] for c in counts.values()),
        }
        if local_out:  # the run's summary, contact sheets and registry record: what doge serve --dataset shows
            write_atomic(out / RUN_FILE, (json.dumps(summary, indent=1, default=str) + "\n").encode("utf-8"))
            summary["contact_sheets"] = write_contact_sheets(out, summary)
        summary["card"] = str(write_card(out, summary))
        if local_out:
            write_atomic(out / RUN_FILE, (json.dumps(summary, indent=1, default=str) + "\n").encode("utf-8"))
            summary["datasets_recorded"] = _record_in_registry(reg, out, summary)
    return summary


def _record_in_registry(reg, out: Path, summary: dict) -> list[str]:
    """Record OUT on each gap version it was made with (an attachment of kind ``dataset``: an
    overview sheet, with the folder and counts), replacing that version's earlier record of OUT,
    so the library lists the datasets made with each version. A registry that refuses is a warning."""
    from doge.augmentation.contact import overview_png

    png = overview_png(out, summary)
    if png is None:
        return []
    settings = {
        "out": str(out.resolve()),
        "format": summary["format"],
        "images": summary["images"],
        "generated": summary["generated"],
        "classes": len(summary["class_names"]),
        "rejected_by_people": summary["curation"]["rejected_by_people"],
        "rejected_by_filter": summary["curation"]["rejected_by_filter"],
    }
    recorded = []
    for ref in dict.fromkeys(g["ref"] for g in summary["gap_details"]):
        try:
            for old in reg.attachments(ref, kind=DATASET):
                if (old.get("settings") or {}).get("out") == settings["out"]:
                    reg.remove_attachment(ref, old["id"], kind=DATASET)
            reg.add_attachment(ref, png, DATASET, settings)
            recorded.append(ref)
        except DogeError as exc:
            log.warning("doge augment: could not record %s on %s in the registry (%s)", out, ref, exc)
    return recorded


def _render_and_refill(
    samples: Samples, work, settings: RenderSettings, runtime: Runtime, refill: Refill
) -> tuple[int, int, dict[int, object]]:
    """Render every sample; with ``refill.filter``, score them and give each rejected slot its next
    sample until none is rejected or it ran out of tries. Returns (written, already there, the last
    plan of each gap group)."""
    written, skipped, engine = 0, 0, None
    image_set = samples.dataset.image_set()
    last_plans: dict[int, object] = {}
    while True:
        for i, group in enumerate(samples.groups):
            jobs = samples.jobs(i)
            if not jobs:
                continue
            p, engine, made, done = _render(group, work / _slug(group), image_set, jobs, engine, settings, runtime)
            last_plans[i] = p
            written, skipped = written + made, skipped + done
        if not refill.filter:
            return written, skipped, last_plans
        verdicts = _filter(samples.groups, work, refill, samples.dataset.root, runtime)
        grown = False
        for chain in samples.chains:
            entry = verdicts[chain.slot.gap].get(samples.work_name(chain, chain.ks[-1]))
            if entry and (entry.get("filter") or {}).get("rejected") and samples.tries(chain) < refill.max_tries:
                samples.advance(chain)
                grown = True
        if not grown:
            return written, skipped, last_plans


def _render(group, folder, image_set, jobs, engine, settings: RenderSettings, runtime: Runtime):
    p = plan(group, None, folder, settings, runtime, sources=image_set, jobs=jobs)
    if not p.pending:
        return p, engine, 0, len(p.jobs)
    if not runtime.ray and engine is None:
        engine = load_engine(p)
    result = run_plan(p, progress=runtime.progress, ray=runtime.ray, engine=None if runtime.ray else engine)
    return p, engine, len(result.written), result.skipped


def _filter(groups, work: Path, refill: Refill, sources_root, runtime: Runtime) -> dict[int, dict[str, dict]]:
    """Score every group's images as ``doge filter`` does; the verdicts land in its manifest. The
    new images were rendered from the dataset's files: their sources are read inside ``sources_root``."""
    verdicts: dict[int, dict[str, dict]] = {}
    for i, group in enumerate(groups):
        folder = work / _slug(group)
        if not (folder / "manifest.jsonl").is_file():
            verdicts[i] = {}
            continue
        filter_outputs(
            folder,
            str(parse_weighted_ref(group[0])[0]),
            src=refill.filter_src,
            tgt=refill.filter_tgt,
            sources_root=sources_root,
            min_target_score=refill.min_target_score,
            min_source_similarity=refill.min_source_similarity,
            # the filter's encoder batches as doge filter does (32), here, in float32; --batch-size,
            # --ray and --dtype are the renders'
            runtime=replace(runtime, batch_size=None, ray=None, dtype=None),
        )
        verdicts[i] = manifest.read(folder / "manifest.jsonl")
    return verdicts


def _check_places(dataset, out, work, layout: Layout, dry_run: bool) -> dict[str, str]:
    """Refuse an OUT or work area inside SRC, an SRC or masks inside OUT, names OUT cannot hold and
    an OUT that cannot be written, before anything renders; returns the label → class folder map."""
    refuse_inside_src(dataset.root, out)
    for given, folder in (("SRC", dataset.root), ("--masks", dataset.masks)):
        if folder is not None and storage.same_or_below(folder, out):
            raise DogeError(
                f"{given} {storage.shown(folder)} lies inside --out {storage.shown(out)}: augment would write its "
                f"classes among your images and clean up there on a rerun; put --out beside {given}"
            )
    check_unique_stems(source.rel for source in dataset.sources)
    refuse_inside_src(dataset.root, work, "--work")
    folders = class_folders(dataset.classes)
    check_names(dataset, folders, layout.with_sources)
    if storage.is_remote(out) and not dry_run:
        storage.check_writable(out)  # a bucket that cannot take the dataset fails before anything renders
    with storage.errors(out, "read"):
        # an earlier OUT's names, and the folders this run writes to, stay inside OUT
        check_out(out, folders, layout.annotations_name)
    if layout.output_format == "parquet":
        parquet_features(dataset)  # its schema (and datasets itself) before anything renders
    return folders


def _write(out, dataset, items, layout: Layout, label_column: str) -> dict:
    """Lay ``items`` out in OUT in the layout's format; returns what the writers counted."""
    link = layout.with_sources == "link"
    stats: dict = {"dropped_annotations": 0}
    if layout.output_format == "imagefolder":
        write_imagefolder(out, dataset, items, link, label_column)
    elif layout.output_format == "coco":
        write_coco(out, dataset, items, link, layout.annotations_name, stats)
    elif layout.output_format == "parquet":
        write_parquet(out, dataset, items, layout.shard_size, stats)
    else:
        write_webdataset(out, dataset, items, layout.shard_size)
    return stats


def _collect(
    dataset: Dataset,
    chains: list[Chain],
    entries: dict[int, dict[str, dict]],
    work: Path,
    groups: list[list[str]],
    targets: dict[str, int],
    with_sources: str,
    filtered: bool,
    folders: dict[str, str],
    people: AbstractSet[str] = frozenset(),
) -> tuple[list[Item], dict[str, dict[str, int]]]:
    """The dataset's items (accepted new images, then sources if asked) and the counts per class:
    ``rejected`` by the filter, ``rejected_by_people`` (reviewers' marks in OUT/doge-curation.json)."""
    counts = {
        label: {
            "sources": len(ix),
            "asked": targets[label],
            "made": 0,
            "rejected": 0,
            "rejected_by_people": 0,
            "short": 0,
            "skipped": 0,
        }
        for label, ix in dataset.by_class().items()
    }
    for skipped in dataset.skipped:
        if skipped["label"] in counts:
            counts[skipped["label"]]["skipped"] += 1
    items = []
    for chain in chains:
        slot, c = chain.slot, counts[chain.slot.label]
        accepted = None
        for k in chain.ks:
            name = _work_name(dataset, slot.source, k)
            entry = entries[slot.gap].get(name)
            path = work / _slug(groups[slot.gap]) / name
            if entry is None or not path.is_file():
                continue
            key = image_id(groups[slot.gap], name)
            if key in people:
                c["rejected_by_people"] += 1
                continue
            if filtered and (entry.get("filter") or {}).get("rejected"):  # an earlier --filter's verdict
                c["rejected"] += 1
                continue
            source = dataset.sources[slot.source]
            accepted = Item(source, f"{source_stem(dataset, source)}_{k}", path, entry, folders[source.label], key)
        if accepted is None:
            c["short"] += 1
        else:
            c["made"] += 1
            items.append(accepted)
    if with_sources != "none":
        items += [Item(s, source_stem(dataset, s), None, None, folders[s.label]) for s in dataset.sources]
    items.sort(key=lambda it: (it.source.label, it.stem))
    return items, counts


def _settings(p) -> dict:
    if p is None:
        return {}
    s = asdict(p.settings)
    s["controls"] = [c.describe() for c in p.controls]
    s["controlnets"] = p.controlnets
    return s
