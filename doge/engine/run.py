"""Carrying out a render plan: load the engine once, then generate the pending images in batches."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from doge import manifest
from doge.atomic import save_image_atomic
from doge.errors import DogeError
from doge.rendering import Job, Plan, RenderResult, manifest_entry
from doge.seeds import image_seed

log = logging.getLogger("doge")

GRID_ROWS = 8  # sources per grid sheet


@dataclass
class Source:
    path: Path
    stem: str
    sha256: str
    image: object  # PIL RGB
    controls: list  # one PIL conditioning image per ControlNet


def run_plan(p: Plan, progress: bool = True) -> RenderResult:
    from doge.devices import pick_device, pick_dtype
    from doge.tiny import is_tiny_model, warn_if_tiny

    skipped = len(p.jobs) - len(p.pending)
    written: list[str] = []
    if p.pending:
        device = pick_device(p.device)
        dtype = pick_dtype(device, p.dtype)
        from doge.engine.loading import load_pipeline

        warn_if_tiny(p.settings.model)
        pipe = load_pipeline(p.settings.model, p.controlnets, device, dtype, p.settings.lora)
        tiny = is_tiny_model(p.settings.model)
        written = _generate(p, pipe, device, str(dtype).removeprefix("torch."), tiny, progress)
    grids = _write_grids(p) if p.grid else []
    return RenderResult(out=p.out, written=written, skipped=skipped, manifest=p.out / "manifest.jsonl", grids=grids)


def _generate(p: Plan, pipe, device: str, dtype: str, tiny: bool, progress: bool) -> list[str]:
    from tqdm.auto import tqdm

    written: list[str] = []
    cache: dict[int, Source | None] = {}
    bar = tqdm(total=len(p.pending), unit="img", desc="render", disable=not progress)
    for batch in _batches(p.pending, p.batch_size):
        # Only this batch's sources stay decoded: memory stays flat however many sources there are.
        cache = {i: cache[i] if i in cache else _load_source(p, i) for i in sorted({job.source for job in batch})}
        ready = [job for job in batch if cache[job.source] is not None]
        images = _generate_batch(p, pipe, ready, cache) if ready else []
        entries = []
        for job, image in zip(ready, images):
            source = cache[job.source]
            save_image_atomic(p.out / job.image, image)
            seed = image_seed(p.settings.seed, source.sha256, job.k)
            entry = manifest_entry(p, job, source.path, source.sha256, seed, device, dtype)
            entry["tiny_model"] = tiny
            entries.append(entry)
            written.append(job.image)
        manifest.append(p.out / "manifest.jsonl", entries)  # after the images: a line names a whole image
        bar.update(len(batch))
    bar.close()
    return written


def _batches(jobs: list[Job], size: int):
    for start in range(0, len(jobs), size):
        yield jobs[start:start + size]


def _load_source(p: Plan, index: int) -> Source | None:
    from doge.images import load_image

    path = p.sources.files[index]
    image = load_image(path)
    if image is None:
        return None  # load_image has said why, in one line
    size = (p.settings.size, p.settings.size)
    stem = Path(p.sources.relative(path)).with_suffix("").as_posix().replace("/", "__")
    controls = []
    for control in p.controls:
        made = control.make(image, size, path)
        if made is None:
            continue
        target = p.out / "controls" / f"{stem}_{control.name}.png"
        if not target.exists():
            save_image_atomic(target, made)
        controls.append(made)
    return Source(path, stem, hashlib.sha256(path.read_bytes()).hexdigest(), image, controls)


def _generate_batch(p: Plan, pipe, jobs: list[Job], cache: dict[int, Source]) -> list:
    import torch

    from doge.engine.loading import embed_images

    s = p.settings
    order = sorted({job.source for job in jobs})
    embeds = embed_images(pipe, [cache[i].image for i in order])
    row = {source: i for i, source in enumerate(order)}
    gap = p.gap_vector.to(device=embeds.device, dtype=embeds.dtype)
    shifted = torch.stack([embeds[row[job.source]] + job.weight * gap for job in jobs])
    # CPU generators give the same noise on every device.
    generators = [torch.Generator("cpu").manual_seed(image_seed(s.seed, cache[j.source].sha256, j.k)) for j in jobs]
    kwargs = dict(
        image_embeds=shifted, prompt=[s.prompt] * len(jobs), negative_prompt=[s.negative_prompt] * len(jobs),
        height=s.size, width=s.size, num_inference_steps=s.steps, guidance_scale=s.guidance,
        noise_level=s.noise_level, generator=generators,
    )
    if p.controlnets:
        per_net = [[cache[j.source].controls[n] for j in jobs] for n in range(len(p.controlnets))]
        kwargs.update(
            control_image=per_net if len(per_net) > 1 else per_net[0],
            controlnet_conditioning_scale=s.controlnet_scale if len(per_net) > 1 else s.controlnet_scale[0],
            control_guidance_start=s.control_start, control_guidance_end=s.control_end, guess_mode=s.guess_mode,
        )
    if s.lora:
        kwargs["cross_attention_kwargs"] = {"scale": s.lora_scale}
    try:
        return pipe(**kwargs).images
    except torch.cuda.OutOfMemoryError:
        raise DogeError(f"out of GPU memory at --batch-size {p.batch_size}; use a smaller --batch-size") from None


def _write_grids(p: Plan) -> list[Path]:
    """Sheets of ``source | controls | outputs``, one row per source, from every finished image."""
    from PIL import Image

    from doge.grid import grid_row, stack_rows

    done = manifest.read(p.out / "manifest.jsonl")
    cell = min(256, p.settings.size)
    rows = []
    for source, jobs in groupby([j for j in p.jobs if j.image in done], key=lambda j: j.source):
        path = p.sources.files[source]
        stem = Path(p.sources.relative(path)).with_suffix("").as_posix().replace("/", "__")
        cells, labels = [Image.open(path)], ["source"]
        for control in p.controls:
            control_path = p.out / "controls" / f"{stem}_{control.name}.png"
            if control_path.exists():
                cells.append(Image.open(control_path))
                labels.append(control.name)
        for job in jobs:
            cells.append(Image.open(p.out / job.image))
            labels.append(f"w={job.weight:g}" if p.settings.sweep else f"k={job.k}")
        rows.append(grid_row(cells, cell, labels))
    sheets = []
    for i in range(0, len(rows), GRID_ROWS):
        target = p.out / "grid" / f"grid_{i // GRID_ROWS:03d}.png"
        save_image_atomic(target, stack_rows(rows[i:i + GRID_ROWS]))
        sheets.append(target)
    return sheets
