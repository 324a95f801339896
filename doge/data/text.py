"""Text towers aligned with an image encoder, reached through the ``text_encoders`` plugin hook."""

from __future__ import annotations

from pathlib import Path

from doge import pluginmanager
from doge.errors import DogeError
from doge.hub import default_model


def build_text_encoder(image_encoder: dict, text_model: str | None = None, device: str | None = None):
    """The text tower for the space of ``image_encoder`` (an encoder's provenance), alignment checked."""
    plugin = image_encoder.get("plugin")
    if plugin not in pluginmanager.table("text_encoders"):
        raise DogeError(
            f"the {plugin!r} image encoder has no text tower aligned with it; text needs a gap made with --encoder clip"
        )
    cls = pluginmanager.get("text_encoders", plugin)
    return cls.for_image_encoder(image_encoder, text_model=text_model, device=device)


def describe_image_encoder(encoder: str, model: str | None) -> dict | None:
    """The image encoder's provenance without loading its weights, where its text plugin can read it."""
    entry = pluginmanager.table("text_encoders").get(encoder)
    describe = getattr(entry.obj, "describe_image_encoder", None) if entry is not None else None
    return describe(str(model or default_model())) if describe is not None else None


def fill_template(template: str, classes: list[str]) -> list[str]:
    """``template`` with ``{}`` replaced by each class name; a template without ``{}`` is one text."""
    if not template.strip():
        raise DogeError("a text side is empty: describe the domain, e.g. --tgt-text 'a pencil sketch of a {}'")
    if "{}" not in template:
        return [template]
    if not classes:
        raise DogeError(
            f"{template!r} has a {{}} for class names but no classes were given: add --classes cat,dog "
            "or --classes-from DIR"
        )
    return [template.replace("{}", name) for name in classes]


def class_names(classes: str | list[str] | None = None, classes_from: str | Path | None = None) -> list[str]:
    """Class names from a comma list and/or a folder's sub-folders (``golden_retriever`` -> ``golden retriever``)."""
    names: list[str] = []
    if isinstance(classes, str):
        names += [c.strip() for c in classes.split(",") if c.strip()]
    elif classes:
        names += [str(c).strip() for c in classes if str(c).strip()]
    if classes_from is not None:
        folder = Path(classes_from).expanduser()
        if not folder.is_dir():
            raise DogeError(f"--classes-from {folder} is not a folder; pass a folder of class folders")
        found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not found:
            raise DogeError(f"--classes-from {folder} has no sub-folders to take class names from")
        names += [name.replace("_", " ") for name in found]
    return list(dict.fromkeys(names))  # in order, each once
