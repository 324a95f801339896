"""The step a local run and a Ray actor share: load the engine, load a source with its controls,
render a batch, and write what comes back.

:func:`render_batch` turns a batch of jobs (their sources decoded, their controls made) into PNG
bytes with their manifest lines; it writes nothing. :class:`OutputWriter`, in the calling process,
is the output folder's one writer, so images land atomically and manifest lines never interleave.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from doge.atomic import write_atomic
from doge.errors import DogeError
from doge.gaps.shifting import shift
from doge.rendering import manifest
from doge.rendering.geometry import Geometry, fit_geometry
from doge.rendering.plan import Job, Plan, manifest_entry, output_stem
from doge.rendering.seeds import image_seed

if TYPE_CHECKING:
    from PIL import Image

    from doge.rendering.pipeline import StableUnCLIPControlNetImg2ImgPipeline

log = logging.getLogger("doge")

COMMIT_SECONDS = 10.0  # how often, at most, a manifest on an object store is put again whole
PUT_THREADS = 8  # objects of one batch put at once to an object store


@dataclass
class Source:
    path: Path
    stem: str
    sha256: str
    image: Image.Image  # RGB
    controls: list  # (control name, PIL conditioning image), one per ControlNet
    geometry: Geometry  # how the outputs lie over this source (every control map has its output_size)
    empty: list[str] = field(default_factory=list)  # controls whose map came out (almost) empty


@dataclass
class Engine:
    """A loaded pipeline and what the manifest says about where it ran."""

    pipe: StableUnCLIPControlNetImg2ImgPipeline
    device: str
    dtype: str  # "float32", "float16", ...
    tiny: bool


@dataclass
class Output:
    """A file to write into the output folder: a generated image (with its manifest line) or a control map."""

    path: str  # relative to the output folder
    png: bytes
    entry: dict | None  # the manifest line; None for a control map


def load_engine(p: Plan, device: str | None = None) -> Engine:
    """Load the plan's pipeline on ``device`` (default: the plan's, else the best there is)."""
    from doge.devices import pick_device, pick_dtype
    from doge.hub import is_tiny_model, warn_if_tiny
    from doge.rendering.loading import load_pipeline

    device = pick_device(device or p.device)
    dtype = pick_dtype(device, p.dtype)
    warn_if_tiny(p.settings.model)
    pipe = load_pipeline(p.settings.model, p.controlnets, device, dtype, p.settings.lora)
    return Engine(pipe, device, str(dtype).removeprefix("torch."), is_tiny_model(p.settings.model))


def engine_for_pipeline(p: Plan, pipe) -> Engine:
    """An engine on ``pipe``, a user's loaded unCLIP pipeline: its modules, device and dtype, the plan's ControlNets."""
    from doge.hub import is_tiny_model
    from doge.rendering.loading import pipeline_from_loaded

    width = p.gap_vector.shape[-1]
    built = pipeline_from_loaded(pipe, p.controlnets, int(width))
    return Engine(built, str(built.device), str(built.dtype).removeprefix("torch."), is_tiny_model(p.settings.model))


class OutputWriter:
    """The one writer of an output folder: each image atomically, then its manifest line.

    A manifest line is appended only after its image is in place, so a line always names a whole
    image; an image already written by this run (a batch delivered twice) is not written again.

    On an object store (see :mod:`doge.storage`) a batch's images are put concurrently, and the
    manifest, which has to be put again whole each time, is committed at most every
    :data:`COMMIT_SECONDS` and when the writer closes (also when the run fails): a run killed in
    between leaves images the manifest does not list yet, which the rerun makes again with the same
    bytes, and never a line without its image.
    """

    def __init__(self, out: Path, total: int, progress: bool = True):
        from tqdm.auto import tqdm

        from doge import storage

        self.out = out
        self.written: list[str] = []
        self._seen: set[str] = set()
        self._bar = tqdm(total=total, unit="img", desc="render", disable=not progress)
        self._advanced = 0.0  # images' worth of steps shown but not yet written
        self._remote = storage.is_remote(out)
        self._pending: list[dict] = []  # lines of images in place, not yet in the remote manifest
        self._committed_at = 0.0

    def write(self, outputs: list[Output]) -> None:
        """Write a batch's images, then their manifest lines; if a write fails (a full disk), the
        batch's images that have no line yet are removed again, so no image is left unlisted."""
        entries, fresh, puts = [], [], []
        try:
            for output in outputs:
                target = self.out / output.path
                if output.entry is None:
                    if not target.exists():  # a control map is made once per source
                        puts.append((target, output.png))
                elif output.path not in self._seen and output.path not in fresh:
                    puts.append((target, output.png))
                    entries.append(output.entry)
                    fresh.append(output.path)
            self._put(puts)
            if self._remote:
                self._pending += entries
                if time.monotonic() - self._committed_at >= COMMIT_SECONDS:
                    self._commit()
            else:
                manifest.append(self.out / "manifest.jsonl", entries)
        except BaseException:
            for path in fresh:
                (self.out / path).unlink(missing_ok=True)
            raise
        self._seen.update(fresh)
        self.written.extend(fresh)
        if entries:  # steps already shown by advance() count towards these images
            self._bar.update(max(0.0, len(entries) - self._advanced))
            self._advanced = 0.0

    def _put(self, puts: list[tuple]) -> None:
        if not self._remote or len(puts) < 2:
            for target, data in puts:
                write_atomic(target, data)
            return
        from concurrent.futures import ThreadPoolExecutor

        # one request each, waiting on the network: a batch's objects go up side by side
        with ThreadPoolExecutor(max_workers=min(PUT_THREADS, len(puts))) as pool:
            for done in [pool.submit(write_atomic, target, data) for target, data in puts]:
                done.result()

    def _commit(self) -> None:
        if self._pending:
            manifest.append(self.out / "manifest.jsonl", self._pending)
            self._pending = []
            self._committed_at = time.monotonic()

    def advance(self, images: float) -> None:
        """Move the bar by a share of an image (a denoising step of a batch) before it is written."""
        self._advanced += images
        self._bar.update(images)

    def close(self) -> list[str]:
        try:
            self._commit()
        finally:
            self._bar.close()
        return self.written


def load_source(p: Plan, index: int, data: bytes | None = None) -> Source | None:
    """Decode source ``index`` (from ``data``, its bytes, when already read) and make its controls.

    None for a file that cannot be decoded or laid out (``--fit keep`` on a 1:20 strip); one
    warning line says why.
    """
    from doge import storage
    from doge.data.images import decode_image

    path = p.sources.files[index]
    if data is None:
        try:
            data = storage.read_bytes(path)
        except (OSError, DogeError) as exc:  # gone or unreadable since planning: this source only
            log.warning("skipping %s: %s", storage.shown(path), exc)
            return None
    image, reason = decode_image(path, data)
    if image is None:
        log.warning("skipping %s: %s", path, reason)
        return None
    try:
        geometry = fit_geometry(image.width, image.height, p.settings.size, p.settings.fit)
    except DogeError as exc:  # this source's shape, not the run: the others still render
        log.warning("skipping %s: %s", path, exc)
        return None
    controls, empty = [], []
    for control in p.controls:
        made = control.make(image, geometry.output_size, path, geometry=geometry)
        if made is not None:
            controls.append((control.name, made))
            # is_empty / empty_advice are optional for a third-party control (see doge.hooks)
            is_empty = getattr(control, "is_empty", None)
            if is_empty is not None and is_empty(made):
                empty.append(control.name)
                advice = getattr(control, "empty_advice", None)
                log.warning(
                    "%s: its %s map is (almost) empty, so the ControlNet keeps none of its layout; %s",
                    path,
                    control.name,
                    advice() if advice is not None else f"check the {control.name} control's options",
                )
    return Source(path, source_stem(p, path), hashlib.sha256(data).hexdigest(), image, controls, geometry, empty)


def source_stem(p: Plan, path: Path) -> str:
    return output_stem(p.sources.relative(path))


def control_outputs(p: Plan, source: Source) -> list[Output]:
    return [Output(f"controls/{source.stem}_{name}.png", png_bytes(made), None) for name, made in source.controls]


def render_batch(
    p: Plan, engine: Engine, jobs: list[Job], sources: dict[int, Source | None], on_step: Callable | None = None
) -> list[Output]:
    """Generate ``jobs`` (their sources already loaded) and return the images with their manifest lines.

    ``on_step(images)``, if given, is called after each denoising step with the share of an image
    it made (the batch's images / steps), so a progress bar moves while a batch runs.
    """
    loaded = {i: source for i, source in sources.items() if source is not None}
    ready = [job for job in jobs if job.source in loaded]
    # One pipeline call makes images of one shape: with --fit keep, sources of other aspects go apart.
    shapes: dict[tuple[int, int], list[Job]] = {}
    for job in ready:
        shapes.setdefault(loaded[job.source].geometry.output_size, []).append(job)
    made: dict[str, object] = {}
    for shape, group in shapes.items():
        made.update(zip((job.image for job in group), _generate_batch(p, engine.pipe, group, loaded, shape, on_step)))
    outputs = []
    for job in ready:
        source = loaded[job.source]
        seed = image_seed(p.settings.seed, source.sha256, job.k)
        entry = manifest_entry(p, job, source.path, source.sha256, seed, engine.device, engine.dtype, source.geometry)
        entry["tiny_model"] = engine.tiny
        for control in entry["controls"]:
            if control["name"] in source.empty:
                control["empty"] = True  # see the warning load_source gave
        outputs.append(Output(job.image, png_bytes(made[job.image]), entry))
    return outputs


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _generate_batch(
    p: Plan, pipe, jobs: list[Job], cache: dict[int, Source], shape: tuple[int, int], on_step: Callable | None = None
) -> list:
    import torch

    from doge.rendering.loading import embed_images

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
        image_embeds=shifted,
        prompt=[s.prompt] * len(jobs),
        negative_prompt=[s.negative_prompt] * len(jobs),
        height=shape[1],
        width=shape[0],
        num_inference_steps=s.steps,
        guidance_scale=s.guidance,
        noise_level=s.noise_level,
        generator=generators,
    )
    if p.controlnets:
        per_net = [[cache[j.source].controls[n][1] for j in jobs] for n in range(len(p.controlnets))]
        kwargs.update(
            control_image=per_net if len(per_net) > 1 else per_net[0],
            controlnet_conditioning_scale=s.controlnet_scale if len(per_net) > 1 else s.controlnet_scale[0],
            control_guidance_start=s.control_start,
            control_guidance_end=s.control_end,
            guess_mode=s.guess_mode,
        )
    if s.lora:
        kwargs["cross_attention_kwargs"] = {"scale": s.lora_scale}
    if on_step is not None:
        share = len(jobs) / s.steps

        def step_done(
            pipe: StableUnCLIPControlNetImg2ImgPipeline, i: int, t: torch.Tensor, tensors: dict[str, torch.Tensor]
        ) -> dict[str, torch.Tensor]:
            on_step(share)
            return {}

        kwargs["callback_on_step_end"] = step_done
    try:
        return pipe(**kwargs).images
    except torch.cuda.OutOfMemoryError:
        raise DogeError(f"out of GPU memory at --batch-size {p.batch_size}; use a smaller --batch-size") from None
