"""The public Python API: what the CLI calls, and what a notebook user calls directly.

A facade: the functions live in the sub-packages that own them, and nothing inside doge imports
this module.
"""

from __future__ import annotations

from doge.data.encoder import build_encoder
from doge.gaps.extract import create_gap
from doge.gaps.gap import Gap
from doge.gaps.store import load_gap, registry_for
from doge.rendering.plan import RenderResult, plan
from doge.rendering.preview import make_preview as preview
from doge.rendering.run import run_plan

__all__ = ["Gap", "RenderResult", "build_encoder", "create_gap", "load_gap", "preview", "registry_for", "render"]


def render(gaps, src, out, *, progress: bool = True, ray: str | None = None, **options) -> RenderResult:
    """Render ``src`` images shifted by ``gaps`` into ``out``; see ``doge render --help``.

    ``gaps`` is a list of refs, each optionally weighted (``"day->night:0.5"``). ``ray`` runs the
    batches on Ray: ``"local"`` starts a local Ray, ``"auto"`` or ``"ray://host:port"`` joins a cluster.
    Every other option is :func:`doge.rendering.plan.plan`'s.
    """
    return run_plan(plan(gaps, src, out, **options), progress=progress, ray=ray)
