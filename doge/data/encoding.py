"""Batched, streamed encoding of an ImageSet: decode in worker processes, encode in this one.

Only a few batches of pixels are ever in memory (the DataLoader's prefetch), however many
images there are; the [N, D] embeddings are kept, they are small. Workers decode, hash and
preprocess; they never hold the encoder, only the (picklable) preprocessor, so any
multiprocessing start method works. Bad files are reported back to this process and logged
here, one warning line each, so warnings are not lost inside worker processes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from doge import storage
from doge.data.embeddings import Embeddings
from doge.data.encoder import encode_pixels
from doge.data.images import ImageSet, combine_digest, decode_image, relative_posix
from doge.errors import DogeError
from doge.runtime import Runtime

log = logging.getLogger("doge")
ENCODE_BATCH = 32  # images per encoder call when the caller names no batch size

Preprocessor = Callable[[object], torch.Tensor]


def default_workers() -> int:
    cpus = os.cpu_count() or 1
    return 0 if cpus <= 1 else min(4, cpus - 1)


class ImageFileDataset(Dataset):
    """Item i: ``(i, pixels or None, sha256 of the file's bytes or None, reason or None)``."""

    def __init__(self, files: Sequence[Path], preprocessor: Preprocessor):
        self.files = [storage.location(f) for f in files]
        self.preprocessor = preprocessor

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        path = self.files[index]
        try:
            data = storage.read_bytes(path)
        except OSError as exc:
            return index, None, None, f"cannot read ({exc.strerror or exc})"
        except DogeError as exc:  # an object store's refusal, already one line
            return index, None, None, str(exc)
        image, reason = decode_image(path, data)
        if image is None:
            return index, None, None, reason
        try:
            pixels = self.preprocessor(image)
        except Exception as exc:  # a preprocessor choking on one image should not stop the run
            detail = " ".join(str(exc).split())
            return index, None, None, f"preprocessing failed ({type(exc).__name__}: {detail})"
        return index, pixels, hashlib.sha256(data).hexdigest(), None


@dataclass
class _Batch:
    indices: list[int]
    pixels: torch.Tensor | None  # None when every item of the batch was skipped
    hashes: list[str]
    skipped: list[tuple[int, str]] = field(default_factory=list)


def _collate(items) -> _Batch:
    kept = [item for item in items if item[1] is not None]
    return _Batch(
        indices=[item[0] for item in kept],
        pixels=torch.stack([item[1] for item in kept]) if kept else None,
        hashes=[item[2] for item in kept],
        skipped=[(item[0], item[3]) for item in items if item[1] is None],
    )


def _batches(
    files: Sequence[Path], preprocessor: Preprocessor, batch_size: int, workers: int | None
) -> Iterator[_Batch]:
    if batch_size < 1:
        raise DogeError(f"batch size must be at least 1 (got {batch_size})")
    if workers is None:
        workers = default_workers()
    # More workers than batches only costs process start-up time.
    workers = max(0, min(workers, math.ceil(len(files) / batch_size)))
    loader = DataLoader(
        ImageFileDataset(files, preprocessor),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
    )
    yield from loader


def iter_image_batches(
    files: Sequence[Path],
    preprocessor: Preprocessor,
    batch_size: int = 32,
    workers: int | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Yield ``(indices into files, pixels [B,C,H,W])`` in file order, skipping bad files.

    Each skipped file is passed to ``on_skip(path, reason)``; by default one warning is logged.
    Batches whose files were all skipped are not yielded.
    """
    files = [storage.location(f) for f in files]
    report = on_skip or _warn_skip
    for batch in _batches(files, preprocessor, batch_size, workers):
        for index, reason in batch.skipped:
            report(files[index], reason)
        if batch.pixels is not None:
            yield batch.indices, batch.pixels


def encode_images(
    encoder,
    imageset: ImageSet,
    batch_size: int = ENCODE_BATCH,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "",
    ray: str | None = None,
) -> Embeddings:
    """Encode every decodable image of ``imageset``; rows follow ``imageset.files`` minus skips.

    ``ray`` ("local", "auto" or a cluster address) encodes on Ray's actors instead
    (:mod:`doge.data.ray_encoding`): the same rows, vectors and digest."""
    files = list(imageset.files)
    if not files:
        raise DogeError(f"no images to encode in {imageset.root}")
    kept: list[int] = []
    hashes: list[str] = []
    chunks: list[torch.Tensor] = []
    skipped = 0
    if ray:
        # Ray is an optional extra and slow to import: only a --ray run pays for it.
        from doge.data.ray_encoding import encode_on_ray

        kept, hashes, vectors, skips = encode_on_ray(encoder.describe(), files, batch_size, ray, progress)
        for index, reason in skips:
            _warn_skip(files[index], reason)
        skipped, chunks = len(skips), [vectors] if vectors is not None else []
    else:
        with tqdm(total=len(files), desc=desc or None, unit="img", disable=not progress) as bar:
            for batch in _batches(files, encoder.preprocessor, batch_size, workers):
                for index, reason in batch.skipped:
                    _warn_skip(files[index], reason)
                skipped += len(batch.skipped)
                if batch.pixels is not None:
                    chunks.append(encode_pixels(encoder, batch.pixels))
                    kept.extend(batch.indices)
                    hashes.extend(batch.hashes)
                bar.update(len(batch.indices) + len(batch.skipped))
                if skipped:
                    bar.set_postfix(skipped=skipped)
    if not kept:
        raise DogeError(f"none of the {len(files)} images in {imageset.root} could be decoded (see the warnings above)")
    if skipped:
        log.warning("skipped %d of %d images in %s that could not be decoded", skipped, len(files), imageset.root)
    rel = [relative_posix(files[i], imageset.root) for i in kept]
    return Embeddings(
        vectors=torch.cat(chunks),
        labels=[imageset.labels[i] for i in kept],
        files=rel,
        folder=storage.shown(imageset.root),
        skipped=skipped,
        digest=combine_digest(zip(rel, hashes)),
    )


def encode_as(encoder, imageset: ImageSet, runtime: Runtime, desc: str = "") -> Embeddings:
    """:func:`encode_images` as ``runtime`` says: its batch size (default ``ENCODE_BATCH``),
    workers, progress and Ray."""
    return encode_images(
        encoder, imageset, runtime.batch(ENCODE_BATCH), runtime.workers, runtime.progress, desc=desc, ray=runtime.ray
    )


def _warn_skip(path: Path, reason: str) -> None:
    log.warning("skipping %s: %s", path, reason)
