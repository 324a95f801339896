"""The plugin hook specifications: what a plugin implements.

What a plugin imports (``hookimpl``, the ``Control`` base, the encoder and estimator contracts,
geometry, embeddings, errors) comes from one module, :mod:`doge.plugin`.

Each ``register_*`` hook receives a ``register(name, obj)`` callback; a plugin calls it once per
thing it offers. Two plugins that register one name are an error naming both. Built-ins
(``doge.plugins.*``) register through these very hooks; third parties are found through the
``doge`` entry-point group, or registered at run time with ``doge.pluginmanager.register_plugin``.
Every hook here has a test that exercises a plugin implementing it (tests/plugins/test_plugins.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # named in the signatures only: importing doge.hooks stays as cheap as it was
    import click

    from doge.data.encoder import Encoder
    from doge.plugin import Estimator

hookspec = pluggy.HookspecMarker("doge")
hookimpl = pluggy.HookimplMarker("doge")


@hookspec
def register_encoders(register: Callable[[str, type[Encoder]], None]) -> None:
    """Register image encoders: ``register("clip", ClipEncoder)``.

    An encoder is a class built as ``cls(model=..., device=..., dtype=...)`` (each may be None:
    the encoder picks its default model, the best device, and a dtype for it) whose instances
    follow :class:`doge.data.encoder.Encoder`: attributes ``plugin`` (the registered name),
    ``model_id``, ``dim`` (embedding width), ``device``, ``dtype``; ``describe()`` → the provenance
    dict ``{"plugin", "model", "revision", "dim", "dtype"}`` stored with every gap;
    ``preprocessor`` → a picklable, weight-free callable PIL RGB image → CHW float32 tensor (it
    runs in worker processes); ``encode(pixels [B, C, H, W]) → [B, dim]`` float32 on the CPU.
    A gap is only ever applied with the encoder (plugin and model) it was made with.
    """


@hookspec
def register_estimators(register: Callable[[str, Estimator], None]) -> None:
    """Register gap estimators: ``register("mean", mean_gap)``.

    An estimator is a function ``fn(src: Embeddings, tgt: Embeddings, **options)`` returning
    ``(vector, params)`` or ``(vector, params, extras)``:

    - ``vector``: a float ``[dim]`` tensor, the gap (added to a source embedding, scaled by the
      edit weight); it must be finite.
    - ``params``: a JSON-able dict stored in the gap's provenance (the options used, and anything
      the estimator measured).
    - ``extras`` (optional): named tensors stored beside the vector in the gap's file, e.g. the
      ``coral`` estimator's transform (see ``doge.gaps.shifting``).

    Options are the function's keyword arguments with defaults (``trim: float = 0.1``): doge takes
    them from the signature, so ``doge gap create --estimator-option trim=0.2`` is parsed to the
    default's type and an unknown key is refused listing the known ones. Evaluation passes back
    only the recorded params that the signature accepts.

    An estimator whose vector a cheaper one computes equally (``coral`` → ``mean``) may name it in
    a ``vector_estimator`` attribute; stability resampling then calls that one instead.
    """


@hookspec
def register_text_encoders(register: Callable[[str, type], None]) -> None:
    """Register text towers aligned with an image encoder: ``register("clip", ClipTextEncoder)``.

    The name is the image encoder's (a gap's ``encoder.plugin``); the class offers
    ``for_image_encoder(encoder_provenance, text_model=None, device=None)`` and ``encode(texts)``.
    """


@hookspec
def register_controls(register: Callable[[str, type], None]) -> None:
    """Register control modes for render: ``register("canny", CannyControl)``.

    A control is a class built as ``cls(control_dir=..., device=..., **options)``. Subclassing
    :class:`doge.plugin.Control` gives all of the contract but ``compute``; a
    class that does not must provide:

    - ``name``: the registered name; ``uses_controlnet`` (bool) and ``default_controlnet`` (a
      ControlNet id or folder for Stable Diffusion 2.1, or None).
    - ``make(image, size, source_path, geometry) → PIL RGB image | None``: the conditioning map
      for one PIL RGB source at ``size = (width, height)``, the output size (None: no map for this
      source). ``geometry`` (:class:`doge.rendering.geometry.Geometry`) says how the output lies
      over the source (``--fit``): lay the map out with ``geometry.apply(image)`` so that it shows
      what the output shows, nothing cut or stretched that the output keeps.
    - ``resolve_controlnet(override) → str | None``: the ControlNet to load (``--controlnet``
      wins over the default); None for a control that uses none.
    - ``describe() → dict``: what went into the maps (name, options), for the render manifest.
    - optional: ``is_empty(map) → bool`` (the map holds too little to control the layout: render
      warns once and marks the manifest) and ``empty_advice() → str`` (what to change then).

    Options: a ``defaults`` dict on the class (``{"low": 100, "high": 800}``), else the
    constructor's keyword arguments with defaults. ``doge render --control-option canny.low=50``
    is parsed to the default's type; unknown keys are refused listing the known ones.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``doge`` CLI group: ``@cli.command() def hello(): ...``.

    A command should be thin: parse, call ``doge`` (the Python API), print; a user's mistake is a
    ``doge.errors.DogeError``, which the group prints as one line.
    """


@hookspec
def gap_event(event: dict[str, Any], registry: str) -> None:
    """A change to the registry was committed: called once per history record, in order.

    ``event`` is the record as ``doge gap history --json`` shows it (``id``, ``name``,
    ``version``, ``action`` such as ``version-created``, ``alias-moved`` or ``label-set``,
    ``before``, ``after``, ``who``, ``at``); ``registry`` is the registry's URL with any password
    hidden. Notify a chat, start CI: the change is already stored, so an error here is logged as
    a warning and changes nothing.
    """
