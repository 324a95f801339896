"""``doge render``: shift each source image's CLIP embedding by a gap and generate from it.

Everything a user can get wrong is checked in :func:`plan` before any model loads; the plan lists
the images to make. Planning runs nothing: :mod:`doge.rendering.run` carries a plan out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import doge
from doge import pluginmanager, storage
from doge.atomic import make_dirs, write_error
from doge.data.images import ImageSet, discover
from doge.errors import DogeError, finite
from doge.gaps.shifting import is_coral
from doge.gaps.store import load_gap, with_registry  # doge.gaps.gap imports torch: so does a plan
from doge.hub import component_config, default_model, require_config
from doge.names import parse_weighted_ref
from doge.rendering import manifest
from doge.rendering.geometry import FITS, Geometry
from doge.rendering.loading import image_encoder_width
from doge.rendering.settings import RenderSettings, settings_from_keywords
from doge.runtime import Runtime

log = logging.getLogger("doge")

# Images one run may plan: a plan holds a job per image, so --count 100000000 filled memory for
# minutes before the first image (a million takes about a second and 200 MB to plan).
MAX_IMAGES = 1_000_000
MAX_SWEEP = 1000  # edit weights in one sweep
RENDER_BATCH = 4  # images per pipeline call when the runtime names none


def check_image_count(total: int, asked: str) -> None:
    if total > MAX_IMAGES:
        raise DogeError(
            f"{asked} asks for {total} images; one run makes at most {MAX_IMAGES}: "
            "split the work into several runs (--limit, or several --out folders)"
        )


DEFAULT_CONTROLS = ("canny",)


@dataclass(frozen=True)
class Job:
    """One output image: source ``source`` (index), sample ``k``, at edit weight ``weight``."""

    source: int
    k: int
    weight: float
    image: str  # path relative to the output folder


@dataclass
class Generation:
    """Every generation parameter as a plan resolved it (its model named, its sweep's weights, a
    scale per ControlNet); all of it goes into each manifest line and the run's fingerprint."""

    model: str
    edit_weight: float
    weights: list[float]
    steps: int
    guidance: float
    prompt: str
    negative_prompt: str
    noise_level: int
    size: int
    seed: int
    controlnet_scale: list[float]
    control_start: float
    control_end: float
    guess_mode: bool
    lora: str | None
    lora_scale: float
    sweep: bool
    fit: str = "keep"  # how outputs lie over their sources: see doge.rendering.geometry
    recipe: str | None = None  # --recipe: the named settings the others were filled from


@dataclass
class Plan:
    gaps: list[dict]  # ref, sha256, weight
    gap_vector: torch.Tensor  # [dim]: the weighted sum of the gaps
    sources: ImageSet
    out: Path
    controls: list  # Control instances
    controlnets: list[str]  # one id per control that uses a ControlNet
    settings: Generation
    jobs: list[Job]
    device: str | None
    dtype: str | None
    batch_size: int
    grid: bool
    fingerprint: str = ""
    pending: list[Job] = field(default_factory=list)
    gap_extras: dict = field(default_factory=dict)  # a coral gap's transform (see doge.gaps.shifting)


@dataclass
class RenderResult:
    out: Path
    written: list[str]
    skipped: int  # already done by an earlier run
    manifest: Path
    grids: list[Path]


def sweep_weights(spec: str) -> list[float]:
    """``START:STOP:COUNT`` → COUNT evenly spaced edit weights (the paper's interpolation)."""
    try:
        start_text, stop_text, count = spec.split(":")
        start, stop, n = float(start_text), float(stop_text), int(count)
        if not math.isfinite(start) or not math.isfinite(stop):
            raise ValueError(spec)
    except ValueError:
        raise DogeError(f"--sweep {spec!r}: write START:STOP:COUNT, e.g. 0:2:5") from None
    if n < 2:
        raise DogeError(f"--sweep {spec!r}: COUNT must be at least 2")
    if n > MAX_SWEEP:
        raise DogeError(f"--sweep {spec!r}: COUNT must be at most {MAX_SWEEP}")
    return [round(start + (stop - start) * i / (n - 1), 6) for i in range(n)]


def _load_gaps(gap_refs, registry) -> tuple[list[dict], torch.Tensor, dict, dict]:
    """(described gaps, weighted sum of their vectors, their encoder, a coral gap's extras)."""
    if not gap_refs:
        raise DogeError("render needs a gap: --gap 'real->painting' (see doge gap list)")
    total: torch.Tensor | None = None
    encoder: dict | None = None
    described: list[dict] = []
    extras: dict = {}
    for text in gap_refs:
        ref, weight = text if isinstance(text, tuple) else parse_weighted_ref(text)
        gap = load_gap(ref, registry=registry)
        if encoder is not None and (gap.encoder.get("dim") != encoder.get("dim")):
            raise DogeError(
                f"gap {gap.ref} has width {gap.dim} but {described[0]['ref']} has width {encoder.get('dim')}: "
                "gaps from different encoders cannot be added"
            )
        encoder = encoder or gap.encoder
        total = gap.vector * weight if total is None else total + gap.vector * weight
        entry = {"ref": gap.ref, "sha256": gap.sha256, "weight": weight, "encoder": gap.encoder}
        if is_coral(gap.extras):
            if weight != 1:
                raise DogeError(
                    f"gap {gap.ref} is a coral gap: give it no weight ({gap.ref}:{weight:g}); set --edit-weight instead"
                )
            entry["shift"] = "coral"  # only then: other renders keep their fingerprint
            extras = gap.extras
        described.append(entry)
    if extras and len(described) > 1:
        coral = next(g["ref"] for g in described if g.get("shift"))
        raise DogeError(
            f"gap {coral} is a coral gap (it maps the covariance too), which cannot be added to other gaps: "
            "render it alone, or use a mean gap in gap arithmetic"
        )
    assert total is not None and encoder is not None  # gap_refs is not empty
    return described, total.to(torch.float32), encoder, extras


def _check_encoder(gap_encoder: dict, gaps: list[dict], model: str) -> None:
    """The gap must live in the space of the pipeline's image encoder."""
    ref = gaps[0]["ref"]
    if gap_encoder.get("plugin") != "clip":
        raise DogeError(
            f"gap {ref} was made with the {gap_encoder.get('plugin')!r} encoder ({gap_encoder.get('model')}), "
            f"but render needs a gap from the 'clip' encoder of the unCLIP model {model}; "
            f"recreate it with --encoder clip --model {model}"
        )
    width = image_encoder_width(model)
    if gap_encoder.get("dim") != width:
        raise DogeError(
            f"gap {ref} has width {gap_encoder.get('dim')} (encoder {gap_encoder.get('model')}) but the image "
            f"encoder of {model} has width {width}; recreate the gap with --model {model}"
        )
    if str(gap_encoder.get("model")) != str(model):
        log.warning(
            "gap %s was encoded with %s; rendering with the image encoder of %s (same width %s)",
            ref,
            gap_encoder.get("model"),
            model,
            width,
        )


def _check_noise_level(noise_level: int, model: str) -> None:
    """unCLIP noises the image embedding with its image_noising_scheduler: levels 0 .. timesteps - 1."""
    if noise_level < 0:
        raise DogeError(f"--noise-level {noise_level}: use 0 (no noise, the paper's) or more")
    if noise_level == 0:
        return
    config = component_config(model, "image_noising_scheduler", "scheduler_config.json")
    top = int(config.get("num_train_timesteps", 1000)) - 1
    if noise_level > top:
        raise DogeError(f"--noise-level {noise_level}: the model {model} takes 0 to {top} (0 is the paper's)")


def refuse_inside_src(src, folder, option: str = "--out") -> None:
    """What a run writes must not land inside its source folder: the rerun of the same command would
    take those images for sources (a class named after the folder), and so on with every rerun."""
    if storage.same_or_below(folder, src):
        folder, src = storage.shown(folder), storage.shown(src)
        raise DogeError(
            f"{option} {folder} is inside --src {src}: its images would be sources on the next run; "
            f"put {option} outside {src}"
        )


def _check_writable(out: Path, grid: bool = False) -> None:
    """Every folder and file the run writes can be written, before any model loads."""
    if storage.is_remote(out):
        storage.check_writable(out)  # a bucket we may not write fails now, not after the first batch
        return
    for blocker in (out / "manifest.jsonl",):
        if blocker.is_dir():
            raise DogeError(f"cannot write {blocker}: a folder stands where the manifest file goes; move it away")
    for folder in (out / "images", out / "controls", *([out / "grid"] if grid else [])):
        if folder.exists() and not folder.is_dir():
            raise DogeError(f"cannot write to {folder}: it is a file, not a folder; move it away or pick another --out")
    make_dirs(out)  # images/ and controls/ are made as the first image lands
    try:
        probe = out / ".doge-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise write_error(out, exc) from None


def _build_controls(controls, control_dir, control_options, controlnets, device) -> tuple[list, list[str]]:
    names = list(controls or DEFAULT_CONTROLS)
    if "none" in names and len(names) > 1:
        raise DogeError("--control none cannot be combined with other controls")
    unused = sorted(
        name
        for name, given in (control_options or {}).items()
        if name not in names and any(v is not None for v in given.values())
    )
    if unused:
        raise DogeError(
            f"options given for the {', '.join(unused)} control, which this render does not use "
            f"(its controls: {', '.join(names)}): add --control {unused[0]}, or drop the options"
        )
    overrides = _controlnet_overrides(names, controlnets)
    built, nets = [], []
    for name in names:
        cls = pluginmanager.get("controls", name)
        options = pluginmanager.check_options("controls", name, (control_options or {}).get(name))
        control = cls(control_dir=control_dir, device=device or "cpu", **options)
        net = control.resolve_controlnet(overrides.get(name))
        built.append(control)
        if net is not None:
            require_config(
                net,
                f"the ControlNet for --control {name}",
                "pass --controlnet DIR (a ControlNet in diffusers layout) or allow hub access",
            )
            nets.append(net)
    if names == ["none"]:
        return [], []
    return built, nets


def _controlnet_overrides(names: list[str], controlnets) -> dict[str, str]:
    """``--controlnet`` values: ``ID`` (one control), or ``CONTROL=ID`` per control."""
    if not controlnets:
        return {}
    if isinstance(controlnets, dict):
        return dict(controlnets)
    overrides = {}
    for item in controlnets:
        control, sep, net = item.partition("=")
        if sep and control in names:
            overrides[control] = net
        elif len(names) == 1:
            overrides[names[0]] = item
        else:
            raise DogeError(
                f"--controlnet {item!r}: with several controls write CONTROL=ID_OR_DIR, e.g. canny=./my-canny-net"
            )
    return overrides


def _scales(controlnet_scale, n: int) -> list[float]:
    scales = [controlnet_scale] if isinstance(controlnet_scale, (int, float)) else list(controlnet_scale)
    scales = [finite(s, "--controlnet-scale") for s in scales]
    if len(scales) == 1:
        scales = scales * n
    if n and len(scales) != n:
        raise DogeError(f"{len(scales)} --controlnet-scale values for {n} ControlNets: give one, or one per --control")
    return scales


def output_stem(relative: str) -> str:
    """``cls/img.jpg`` → ``cls__img``: unique across class folders, readable."""
    return relative.rsplit(".", 1)[0].replace("/", "__")


def check_unique_stems(relatives) -> None:
    """Two sources whose outputs would share a name (``x/a.png`` and ``x/a.jpg``; ``x__y/z.png`` and
    ``x/y__z.png``) are refused: the second's images would count as the first's, already there."""
    seen: dict[str, str] = {}
    for rel in relatives:
        stem = output_stem(rel)
        if stem in seen:
            raise DogeError(
                f"sources {seen[stem]} and {rel} would both write images/{stem}_<k>.png: rename one of them"
            )
        seen[stem] = rel


def _jobs(sources, per_source: int, count: int | None, weights: list[float], sweep: bool) -> list[Job]:
    n_sources = len(sources.files)
    total = count if count is not None else n_sources * per_source
    check_image_count(total * len(weights), "--count" if count is not None else "-n/--per-source")
    jobs = []
    for j in range(total):
        # Fewer sources than requested images: cycle through the sources.
        source, k = j % n_sources, j // n_sources
        stem = output_stem(sources.relative(sources.files[source]))
        for w in weights:
            name = f"{stem}_{k}_w{w:g}.png" if sweep else f"{stem}_{k}.png"
            jobs.append(Job(source, k, w, f"images/{name}"))
    return sorted(jobs, key=lambda job: (job.source, job.k, job.weight))


def plan(
    gaps,
    src,
    out,
    settings: RenderSettings | None = None,
    runtime: Runtime | None = None,
    *,
    per_source: int = 1,
    count: int | None = None,
    limit: int | None = None,
    grid: bool = False,
    sources=None,
    jobs: list[Job] | None = None,
    **options,
) -> Plan:
    """Validate everything and list the images to make; loads no model.

    ``settings`` decide the pixels (default: ``RenderSettings()``, the defaults); ``runtime`` says
    how and where (device, dtype, batch size, registry); any field of either may be given as a
    keyword instead (``steps=2``, ``home=...``). ``sources`` (an
    :class:`~doge.data.images.ImageSet`) and ``jobs`` replace the discovery of ``src`` and the jobs
    made from ``per_source``/``count`` (``doge augment`` plans its own).
    """
    s, rt = settings_from_keywords(settings, runtime, options, "plan")
    out = storage.output_location(out)
    model = str(s.model or default_model())
    weights = sweep_weights(s.sweep) if s.sweep else [finite(s.edit_weight, "--edit-weight")]
    guidance, lora_scale = finite(s.guidance, "--guidance"), finite(s.lora_scale, "--lora-scale")
    size, fit, seed, lora = s.size, s.fit, s.seed, s.lora
    if per_source < 1 or (count is not None and count < 1):
        raise DogeError("-n/--per-source and --count must be at least 1")
    if fit not in FITS:
        raise DogeError(f"--fit {fit!r}: use one of {', '.join(FITS)} (keep: labels carry over; crop: the paper)")
    if not 0 <= s.control_start < s.control_end <= 1:
        raise DogeError("--control-start/--control-end: need 0 <= start < end <= 1")
    if lora is not None and not Path(lora).exists() and "/" not in lora:
        raise DogeError(f"--lora {lora}: no such file or folder")
    _check_noise_level(s.noise_level, model)
    rt = with_registry(rt)
    reg = rt.registry
    described, vector, encoder, extras = _load_gaps(gaps, reg)
    _check_encoder(encoder, described, model)
    if sources is None:
        sources = discover(src, limit=limit, seed=seed)
    check_unique_stems(sources.relative(f) for f in sources.files)
    if src is not None:
        refuse_inside_src(src, out)
    _check_writable(out, grid)
    controls = list(s.controls) if s.controls is not None else None
    controlnets = list(s.controlnets) if s.controlnets is not None else None
    built, nets = _build_controls(controls, s.control_dir, s.control_options, controlnets, rt.device)
    generation = Generation(
        model=model,
        edit_weight=float(s.edit_weight),
        weights=weights,
        steps=s.steps,
        guidance=guidance,
        prompt=s.prompt,
        negative_prompt=s.negative_prompt,
        noise_level=s.noise_level,
        size=size,
        seed=seed,
        controlnet_scale=_scales(s.controlnet_scale, len(nets)),
        control_start=s.control_start,
        control_end=s.control_end,
        guess_mode=s.guess_mode,
        lora=lora,
        lora_scale=lora_scale,
        sweep=bool(s.sweep),
        fit=fit,
        recipe=s.recipe,
    )
    result = Plan(
        gaps=[{k: g[k] for k in ("ref", "sha256", "weight", "shift") if k in g} for g in described],
        gap_vector=vector,
        gap_extras=extras,
        sources=sources,
        out=out,
        controls=built,
        controlnets=nets,
        settings=generation,
        jobs=_jobs(sources, per_source, count, weights, bool(s.sweep)) if jobs is None else list(jobs),
        device=rt.device,
        dtype=rt.dtype,
        batch_size=rt.batch(RENDER_BATCH),
        grid=grid,
    )
    result.fingerprint = _fingerprint(result)
    result.pending = pending_jobs(result)
    return result


def _fingerprint(p: Plan) -> str:
    """What makes two runs the same run: an image made under another fingerprint is not reused."""
    s = asdict(p.settings)
    s.pop("weights")  # each image records its own weight
    payload = {"gaps": p.gaps, "settings": s, "controls": [c.describe() for c in p.controls], "nets": p.controlnets}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def pending_jobs(p: Plan) -> list[Job]:
    """The jobs whose images the output folder does not hold yet, from its manifest.

    A run reads this again under the folder's lock (:func:`doge.rendering.run.run_plan`): what
    :func:`plan` saw may have been written by another run since.
    """
    done = manifest.read(p.out / "manifest.jsonl")
    pending = []
    for job in p.jobs:
        entry = done.get(job.image)
        if entry is not None and entry.get("filter", {}).get("deleted"):
            continue  # `doge filter --delete` threw it away on purpose: don't make it again
        if entry is None or not (p.out / job.image).exists():
            pending.append(job)
        elif entry.get("run") != p.fingerprint:
            raise DogeError(
                f"{p.out} already holds {job.image} from a render with other settings; "
                "use a new --out folder (or delete that one) to render with these"
            )
    return pending


def manifest_entry(
    p: Plan, job: Job, source_path: Path, source_sha: str, seed: int, device: str, dtype: str, geometry: Geometry
) -> dict:
    s = p.settings
    return {
        "image": job.image,
        "run": p.fingerprint,
        "source": storage.shown(source_path),
        "source_sha256": source_sha,
        "k": job.k,
        "seed": seed,
        "gaps": p.gaps,
        "edit_weight": job.weight,
        "steps": s.steps,
        "guidance": s.guidance,
        "prompt": s.prompt,
        "negative_prompt": s.negative_prompt,
        "noise_level": s.noise_level,
        "size": s.size,
        "fit": s.fit,
        "recipe": s.recipe,
        "geometry": geometry.to_json(),
        "run_seed": s.seed,
        "controls": [
            {**c.describe(), "controlnet": net, "scale": scale}
            for c, net, scale in zip(
                p.controls,
                p.controlnets if p.controlnets else [None] * len(p.controls),
                s.controlnet_scale or [0.0] * len(p.controls),
            )
        ],
        "control_start": s.control_start,
        "control_end": s.control_end,
        "guess_mode": s.guess_mode,
        "lora": s.lora,
        "lora_scale": s.lora_scale if s.lora else None,
        "model": s.model,
        "device": device,
        "dtype": dtype,
        "doge_version": doge.__version__,
    }
