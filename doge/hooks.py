"""The plugin hook specifications. Each hook receives a ``register`` callback (or the CLI group)."""

import pluggy

hookspec = pluggy.HookspecMarker("doge")
hookimpl = pluggy.HookimplMarker("doge")


@hookspec
def register_encoders(register):
    """Register image encoders: ``register("clip", ClipEncoder)``.

    An encoder is a class built as ``cls(model=..., device=..., dtype=...)`` that follows
    :class:`doge.data.encoder.Encoder`.
    """


@hookspec
def register_estimators(register):
    """Register gap estimators: ``register("mean", mean_gap)``.

    An estimator is ``fn(src: Embeddings, tgt: Embeddings, **params) -> (vector, params)``.
    """


@hookspec
def register_text_encoders(register):
    """Register text towers aligned with an image encoder: ``register("clip", ClipTextEncoder)``.

    The name is the image encoder's (a gap's ``encoder.plugin``); the class offers
    ``for_image_encoder(encoder_provenance, text_model=None, device=None)`` and ``encode(texts)``.
    """


@hookspec
def register_controls(register):
    """Register control modes for render: ``register("canny", CannyControl)``."""


@hookspec
def register_commands(cli):
    """Add click commands or groups to the ``doge`` CLI group."""
