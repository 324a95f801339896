"""Carrying out a render plan: load the engine once, then generate the pending images in batches.

The work on one batch (decode its sources, make their controls, generate, encode PNGs, build the
manifest lines) is :func:`render_batch`, shared by the local loop here and by the Ray actors of
:mod:`doge.engine.ray_runner`. Neither writes: an :class:`OutputWriter` in the calling process is
the output folder's one writer, so images land atomically and manifest lines never interleave.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from doge import manifest
from doge.atomic import save_image_atomic, write_atomic
from doge.errors import DogeError
from doge.rendering import Job, Plan, RenderResult, manifest_entry, output_stem
from doge.seeds import image_seed
from doge.shifting import shift

log = logging.getLogger("doge")

GRID_ROWS = 8  # sources per grid sheet


@dataclass
class Source:
    path: Path
    stem: str
    sha256: str
    image: object  # PIL RGB
    controls: list  # (control name, PIL conditioning image), one per ControlNet


@dataclass
class Engine:
    """A loaded pipeline and what the manifest says about where it ran."""

    pipe: object
    device: str
    dtype: str  # "float32", "float16", ...
    tiny: bool


@dataclass
class Output:
    """A file to write into the output folder: a generated image (with its manifest line) or a control map."""

    path: str  # relative to the output folder
    png: bytes
    entry: dict | None  # the manifest line; None for a control map


def run_plan(p: Plan, progress: bool = True, ray: str | None = None, engine: Engine | None = None) -> RenderResult:
    """Render ``p.pending`` here, or on Ray when ``ray`` is "local", "auto" or a cluster address.

    ``engine``, from :func:`load_engine`, reuses a loaded pipeline across plans (a local run only).
    """
    skipped = len(p.jobs) - len(p.pending)
    written: list[str] = []
    if p.pending and ray:
        from doge.engine.ray_runner import run_on_ray

        written = run_on_ray(p, ray, progress)
    elif p.pending:
        written = _run_local(p, progress, engine or load_engine(p))
    grids = _write_grids(p) if p.grid else []
    return RenderResult(out=p.out, written=written, skipped=skipped, manifest=p.out / "manifest.jsonl", grids=grids)


def load_engine(p: Plan, device: str | None = None) -> Engine:
    """Load the plan's pipeline on ``device`` (default: the plan's, else the best there is)."""
    from doge.devices import pick_device, pick_dtype
    from doge.engine.loading import load_pipeline
    from doge.tiny import is_tiny_model, warn_if_tiny

    device = pick_device(device or p.device)
    dtype = pick_dtype(device, p.dtype)
    warn_if_tiny(p.settings.model)
    pipe = load_pipeline(p.settings.model, p.controlnets, device, dtype, p.settings.lora)
    return Engine(pipe, device, str(dtype).removeprefix("torch."), is_tiny_model(p.settings.model))


class OutputWriter:
    """The one writer of an output folder: each image atomically, then its manifest line.

    A manifest line is appended only after its image is in place, so a line always names a whole
    image; an image already written by this run (a batch delivered twice) is not written again.
    """

    def __init__(self, out: Path, total: int, progress: bool = True):
        from tqdm.auto import tqdm

        self.out = out
        self.written: list[str] = []
        self._seen: set[str] = set()
        self._bar = tqdm(total=total, unit="img", desc="render", disable=not progress)

    def write(self, outputs: list[Output]) -> None:
        entries = []
        for output in outputs:
            target = self.out / output.path
            if output.entry is None:
                if not target.exists():  # a control map is made once per source
                    write_atomic(target, output.png)
            elif output.path not in self._seen:
                write_atomic(target, output.png)
                entries.append(output.entry)
                self._seen.add(output.path)
                self.written.append(output.path)
        manifest.append(self.out / "manifest.jsonl", entries)
        self._bar.update(len(entries))

    def close(self) -> list[str]:
        self._bar.close()
        return self.written


def _run_local(p: Plan, progress: bool, engine: Engine) -> list[str]:
    writer = OutputWriter(p.out, len(p.pending), progress)
    cache: dict[int, Source | None] = {}
    try:
        for batch in _batches(p.pending, p.batch_size):
            # Only this batch's sources stay decoded: memory stays flat however many sources there are.
            wanted = sorted({job.source for job in batch})
            cache = {i: cache[i] if i in cache else _load_with_controls(p, i, writer) for i in wanted}
            writer.write(render_batch(p, engine, batch, cache))
    finally:
        written = writer.close()
    return written


def _load_with_controls(p: Plan, index: int, writer: OutputWriter) -> Source | None:
    source = load_source(p, index)
    if source is not None:
        writer.write(control_outputs(p, source))
    return source


def _batches(jobs: list[Job], size: int):
    for start in range(0, len(jobs), size):
        yield jobs[start:start + size]


def load_source(p: Plan, index: int, data: bytes | None = None) -> Source | None:
    """Decode source ``index`` (from ``data``, its bytes, when already read) and make its controls.

    None for a file that cannot be decoded; one warning line says why.
    """
    from doge.images import decode_image

    path = p.sources.files[index]
    data = Path(path).read_bytes() if data is None else data
    image, reason = decode_image(path, data)
    if image is None:
        log.warning("skipping %s: %s", path, reason)
        return None
    size = (p.settings.size, p.settings.size)
    controls = []
    for control in p.controls:
        made = control.make(image, size, path)
        if made is not None:
            controls.append((control.name, made))
    return Source(path, _stem(p, path), hashlib.sha256(data).hexdigest(), image, controls)


def _stem(p: Plan, path: Path) -> str:
    return output_stem(p.sources.relative(path))


def control_outputs(p: Plan, source: Source) -> list[Output]:
    return [Output(f"controls/{source.stem}_{name}.png", _png(made), None) for name, made in source.controls]


def render_batch(p: Plan, engine: Engine, jobs: list[Job], sources: dict[int, Source | None]) -> list[Output]:
    """Generate ``jobs`` (their sources already loaded) and return the images with their manifest lines."""
    ready = [job for job in jobs if sources[job.source] is not None]
    images = _generate_batch(p, engine.pipe, ready, sources) if ready else []
    outputs = []
    for job, image in zip(ready, images):
        source = sources[job.source]
        seed = image_seed(p.settings.seed, source.sha256, job.k)
        entry = manifest_entry(p, job, source.path, source.sha256, seed, engine.device, engine.dtype)
        entry["tiny_model"] = engine.tiny
        outputs.append(Output(job.image, _png(image), entry))
    return outputs


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _generate_batch(p: Plan, pipe, jobs: list[Job], cache: dict[int, Source]) -> list:
    import torch

    from doge.engine.loading import embed_images

    s = p.settings
    order = sorted({job.source for job in jobs})
    embeds = embed_images(pipe, [cache[i].image for i in order])
    row = {source: i for i, source in enumerate(order)}
    gap = p.gap_vector.to(device=embeds.device, dtype=embeds.dtype)
    extras = {k: v.to(device=embeds.device, dtype=embeds.dtype) for k, v in p.gap_extras.items()}
    shifted = torch.cat([shift(embeds[row[job.source]][None], gap, job.weight, extras) for job in jobs])
    # CPU generators give the same noise on every device.
    generators = [torch.Generator("cpu").manual_seed(image_seed(s.seed, cache[j.source].sha256, j.k)) for j in jobs]
    kwargs = dict(
        image_embeds=shifted, prompt=[s.prompt] * len(jobs), negative_prompt=[s.negative_prompt] * len(jobs),
        height=s.size, width=s.size, num_inference_steps=s.steps, guidance_scale=s.guidance,
        noise_level=s.noise_level, generator=generators,
    )
    if p.controlnets:
        per_net = [[cache[j.source].controls[n][1] for j in jobs] for n in range(len(p.controlnets))]
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
    finished = [j for j in p.jobs if j.image in done and (p.out / j.image).exists()]  # not those filtered away
    for source, jobs in groupby(finished, key=lambda j: j.source):
        path = p.sources.files[source]
        stem = _stem(p, path)
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
