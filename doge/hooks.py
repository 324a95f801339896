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
def register_controls(register):
    """Register control modes for render: ``register("canny", CannyControl)``."""


@hookspec
def register_commands(cli):
    """Add click commands or groups to the ``doge`` CLI group."""


@hookspec
def gap_event(event, registry):
    """A change to the registry was committed: called once per history record, in order.

    ``event`` is the record as ``doge gap history --json`` shows it (``id``, ``name``,
    ``version``, ``action`` such as ``version-created``, ``alias-moved`` or ``label-set``,
    ``before``, ``after``, ``who``, ``at``); ``registry`` is the registry's URL with any password
    hidden. Notify a chat, start CI: the change is already stored, so an error here is logged as
    a warning and changes nothing.
    """
