"""The public Python API: what the CLI calls, and what a notebook user calls directly.

A facade: the functions live in the sub-packages that own them, and nothing inside doge imports
this module.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from doge.augmentation.run import augment
from doge.data.encoder import build_encoder
from doge.errors import DogeError
from doge.gaps.extract import create_gap, create_text_gap
from doge.gaps.gap import Gap
from doge.gaps.store import load_gap, registry_for
from doge.rendering.batch import engine_for_pipeline
from doge.rendering.loading import loaded_model_name
from doge.rendering.plan import RenderResult, plan
from doge.rendering.preview import make_preview as preview
from doge.rendering.run import run_plan
from doge.rendering.settings import RenderSettings, settings_from_keywords
from doge.runtime import Runtime

__all__ = [
    "Gap",
    "RenderResult",
    "RenderSettings",
    "Runtime",
    "augment",
    "build_encoder",
    "create_gap",
    "create_text_gap",
    "load_gap",
    "preview",
    "registry_for",
    "render",
]


def render(
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
    pipeline=None,
    **options,
) -> RenderResult:
    """Render ``src`` images shifted by ``gaps`` into ``out``; see ``doge render --help``.

    ``gaps`` is a list of refs, each optionally weighted (``"day->night:0.5"``). What decides the
    pixels is ``settings`` (:class:`RenderSettings`); how and where it runs is ``runtime``
    (:class:`Runtime`). Any field of either may also be given as a keyword, which wins:
    ``doge.render(["real->painting"], "photos", "out", steps=20, device="cpu")``.

    ``ray`` (a field of the runtime) runs the batches on Ray: ``"local"`` starts a local Ray,
    ``"auto"`` or ``"ray://host:port"`` joins a cluster. ``pipeline``, an already loaded
    ``StableUnCLIPImg2ImgPipeline`` (diffusers' or doge's), is rendered with as it is (its modules,
    device and dtype; ``model`` defaults to the one it was loaded from); only the plan's
    ControlNets load.
    """
    settings, runtime = settings_from_keywords(settings, runtime, options, "render")
    jobs: dict[str, Any] = dict(per_source=per_source, count=count, limit=limit, grid=grid)
    if pipeline is None:
        return run_plan(plan(gaps, src, out, settings, runtime, **jobs), progress=runtime.progress, ray=runtime.ray)
    if runtime.ray:
        raise DogeError("pipeline= renders in this process; leave out ray= (Ray's actors load the model themselves)")
    if settings.lora or runtime.device or runtime.dtype:
        raise DogeError(
            "pipeline= renders with the pipeline as it is: leave out lora=, device= and dtype= "
            "(use pipe.load_lora_weights(...) and pipe.to(...) instead)"
        )
    if not settings.model:
        settings = replace(settings, model=loaded_model_name(pipeline))
    runtime = replace(runtime, device=str(pipeline.device))  # where controls that run a model (depth) run
    p = plan(gaps, src, out, settings, runtime, **jobs)
    return run_plan(p, progress=runtime.progress, engine=engine_for_pipeline(p, pipeline))
