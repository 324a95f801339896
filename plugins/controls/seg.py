"""Segmentation maps, read from --control-dir (there is no built-in segmenter).

The SD 2.1 segmentation ControlNet understands ADE20K's colour maps. A map may be given as those
colours already, or as a dataset's label IDs with ``labels`` (``--seg-labels``): ``cityscapes``,
``gta5``, ``synthia`` or ``ade20k``, tables kept beside this file in ``seg_labels/*.json`` (each
names its sources), or a user's own JSON mapping. IDs the table does not know are drawn black
and reported once.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from doge.plugin import Control, DogeError, Geometry

if TYPE_CHECKING:  # importlib.resources.abc is Python 3.11's home of Traversable
    from importlib.resources.abc import Traversable

log = logging.getLogger("doge")

LABEL_SETS = ("cityscapes", "gta5", "synthia", "ade20k")


class SegControl(Control):
    name = "seg"
    default_controlnet = "thibaud/controlnet-sd21-ade20k-diffusers"
    # labels: None (the maps are ADE20K colours already), a label set's name, or a JSON file.
    defaults = {"labels": None}
    # Labels must stay crisp: interpolating would invent colours that are no class.
    map_resample = Image.Resampling.NEAREST
    stretch_wide_maps = False

    def __init__(self, control_dir: str | Path | None = None, device: str = "cpu", **options: Any) -> None:
        if control_dir is None:
            raise DogeError(
                "the seg control reads precomputed segmentation maps: pass --control-dir DIR with one map "
                "per source image (same file stem): ADE20K colours, or label IDs with --seg-labels"
            )
        super().__init__(control_dir=control_dir, device=device, **options)
        labels = self.options["labels"]
        self.colours = label_colours(labels) if labels is not None else None
        self._reported: set[int] = set()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self.options["labels"] is not None:
            info["options"]["labels"] = str(self.options["labels"])
        return info

    def compute(self, image: Image.Image, size: tuple[int, int]) -> Image.Image | None:
        # Unreachable: __init__ insists on control_dir, so make() always reads a map.
        raise DogeError("the seg control needs --control-dir")

    def read_map(self, source_path: str | Path, size: tuple[int, int], geometry: Geometry | None = None) -> Image.Image:
        if self.colours is None:
            return super().read_map(source_path, size, geometry)
        path = self.find_map(source_path)
        coloured = Image.fromarray(self.colourise(read_label_ids(path), path))
        if geometry is not None:  # laid out like the output (--fit), labels never blended
            return geometry.apply(coloured, Image.Resampling.NEAREST)
        return coloured.resize((int(size[0]), int(size[1])), Image.Resampling.NEAREST)

    def colourise(self, ids, path: str | Path = "the map"):
        """An HxW array of label IDs as HxWx3 uint8 ADE20K colours; unknown IDs black, reported once."""
        import numpy as np

        assert self.colours is not None
        out = np.zeros((*ids.shape, 3), dtype=np.uint8)
        unknown = []
        for value in np.unique(ids).tolist():
            if int(value) not in self.colours:
                unknown.append(int(value))
            elif self.colours[int(value)] is not None:
                out[ids == value] = self.colours[int(value)]
        new = sorted(set(unknown) - self._reported)
        if new:
            self._reported.update(new)
            log.warning(
                "label IDs %s of %s are not in the %s table: drawn black (map them in a --seg-labels FILE.json)",
                ", ".join(map(str, new)),
                path,
                self.options["labels"],
            )
        return out


def read_label_ids(path: str | Path):
    """The label IDs of a map: a palette PNG's indices, a grey (8/16-bit) map's values, a colour map's red channel.

    GTA5's labels are palette PNGs whose indices are the IDs; SYNTHIA's are 16-bit colour PNGs
    with the ID in the red channel, which PIL would cut to 8 bits, so those are read with OpenCV.
    """
    import cv2
    import numpy as np

    try:
        with Image.open(path) as img:
            if img.mode == "P":
                return np.asarray(img).astype(np.int64)
    except (OSError, ValueError) as exc:
        raise DogeError(f"control map {path} could not be read ({exc}); replace or remove it") from exc
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise DogeError(f"label map {path} could not be read as an image; replace or remove it")
    if array.ndim == 3:
        array = array[..., 2]  # OpenCV gives BGR(A): index 2 is red
    return array.astype(np.int64)


def _tables() -> Traversable:
    return resources.files("doge.plugins.controls").joinpath("seg_labels")


def ade20k_classes() -> dict[str, tuple[int, int, int]]:
    """ADE20K class name -> its colour in the palette the segmentation ControlNet knows."""
    data = json.loads(_tables().joinpath("ade20k.json").read_text(encoding="utf-8"))
    return {c["name"]: tuple(c["color"]) for c in data["classes"]}


def label_colours(labels: str | Path) -> dict[int, tuple[int, int, int] | None]:
    """Label ID -> ADE20K colour (None: void, drawn black without a warning) for a label set or a JSON file."""
    name = str(labels)
    if name == "ade20k":
        data = json.loads(_tables().joinpath("ade20k.json").read_text(encoding="utf-8"))
        return {0: None, **{int(c["id"]): tuple(c["color"]) for c in data["classes"]}}
    if name in LABEL_SETS:
        data = json.loads(_tables().joinpath(f"{name}.json").read_text(encoding="utf-8"))
        where = f"the {name} table"
    else:
        path = Path(name).expanduser()
        if not path.is_file():
            raise DogeError(
                f"--seg-labels {name!r} is neither one of {', '.join(LABEL_SETS)} nor a JSON file; "
                'write one as {"7": "road", "26": "car", "99": [255, 0, 0], "0": null}'
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DogeError(f"--seg-labels {path} is not readable JSON ({exc})") from exc
        where = str(path)
    entries = data.get("labels", data) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise DogeError(f"{where}: expected an object of label ID -> ADE20K class name or [r, g, b]")
    return {_label_id(key, where): _colour(value, key, where) for key, value in entries.items()}


def _label_id(key: str, where: str) -> int:
    try:
        return int(key)
    except ValueError:
        raise DogeError(f"{where}: label {key!r} is not an integer ID") from None


def _colour(value, key: str, where: str) -> tuple[int, int, int] | None:
    if isinstance(value, dict):
        value = value.get("ade20k", value.get("color"))
    if value is None:
        return None
    if isinstance(value, str):
        classes = ade20k_classes()
        if value not in classes:
            import difflib

            close = difflib.get_close_matches(value, list(classes), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise DogeError(f"{where}: label {key} maps to {value!r}, which is no ADE20K class{hint}")
        return classes[value]
    if (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    ):
        return (value[0], value[1], value[2])
    raise DogeError(f"{where}: label {key} maps to {value!r}; give an ADE20K class name, [r, g, b] or null")
