"""``doge gap create --ray``: encode a large image set on a Ray cluster.

Ray tasks on the nodes read each image's bytes (from a folder every node sees, or an object store:
see :mod:`doge.storage`); actors, one per GPU (or CPU slot) spread over the nodes, each holding
the encoder, decode, preprocess and encode a batch and send back one vector, the bytes' sha256 and
any reason the image was skipped. The driver puts the rows back in the files' order, so the
embeddings, their digest and the gap are the ones a local run makes.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from doge.errors import DogeError, first_line
from doge.raycluster import MAX_RESTARTS, READ_CPUS, TASK_RETRIES, actor_layout, connect, import_ray, numpy_batches

log = logging.getLogger("doge")


def encode_on_ray(
    describe: dict, files: Sequence, batch_size: int, address: str, progress: bool = True, device: str | None = None
) -> tuple[list[int], list[str], torch.Tensor | None, list[tuple[int, str]]]:
    """``(kept indices, their sha256, vectors [kept, dim], skipped (index, reason))`` of ``files``,
    encoded on Ray by the encoder ``describe`` names (``{"plugin": ..., "model": ...}``)."""
    ray = import_ray()
    started = connect(ray, address, progress)
    try:
        count, resources = actor_layout(ray.cluster_resources(), device)
        count = max(1, min(count, -(-len(files) // batch_size)))
        paths = list(files)

        def read(row: dict) -> dict:
            from doge import storage

            index = int(row["index"])
            return {"index": index, "data": storage.read_bytes(paths[index])}

        rows = ray.data.from_items([{"index": i} for i in range(len(paths))]).map(read, num_cpus=READ_CPUS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # see doge.rendering.ray_runner
            results = rows.map_batches(
                _EncodeActor,
                fn_constructor_args=(describe.get("plugin", "clip"), describe.get("model"), device),
                batch_size=batch_size,
                compute=ray.data.ActorPoolStrategy(size=count),
                max_restarts=MAX_RESTARTS,
                max_task_retries=TASK_RETRIES,
                scheduling_strategy="SPREAD",
                **resources,
            )
        found: dict[int, tuple] = {}
        with numpy_batches(results) as batches:
            for batch in batches:
                for index, vector, sha, reason in zip(batch["index"], batch["vector"], batch["sha"], batch["reason"]):
                    found[int(index)] = (np.asarray(vector, dtype=np.float32), str(sha), str(reason))
    except DogeError:
        raise
    except Exception as exc:
        raise DogeError(
            f"encoding on Ray failed ({type(exc).__name__}: {first_line(exc)[:200]}); fix the cause (see Ray's logs) "
            "and run it again"
        ) from exc
    finally:
        if started:
            ray.shutdown()
    kept = [i for i in sorted(found) if not found[i][2]]
    skipped = [(i, found[i][2]) for i in sorted(found) if found[i][2]]
    vectors = torch.from_numpy(np.stack([found[i][0] for i in kept])) if kept else None
    return kept, [found[i][1] for i in kept], vectors, skipped


class _EncodeActor:
    """Holds an encoder; turns a batch of (index, bytes) rows into vectors, digests and skip reasons."""

    def __init__(self, plugin: str, model: str | None, device: str | None):
        import ray

        from doge.data.encoder import build_encoder

        # Ray shows an actor only the GPU it was given, as cuda:0.
        self.encoder = build_encoder(plugin, model=model, device="cuda" if ray.get_gpu_ids() else device or "cpu")

    def __call__(self, batch: dict) -> dict:
        from doge.data.encoder import encode_pixels
        from doge.data.images import decode_image

        pixels: list = []
        kept: list[int] = []
        reasons: list[str] = []
        shas: list[str] = []
        for index, data in zip(batch["index"], batch["data"]):
            data = bytes(data)
            shas.append(hashlib.sha256(data).hexdigest())
            image, reason = decode_image(f"image {int(index)}", data)
            if image is not None:
                try:
                    pixels.append(self.encoder.preprocessor(image))
                    kept.append(len(reasons))
                except Exception as exc:  # as a local run: one image the preprocessor chokes on is skipped
                    reason = f"preprocessing failed ({type(exc).__name__}: {' '.join(str(exc).split())})"
            reasons.append(reason or "")
        if pixels:
            vectors = encode_pixels(self.encoder, torch.stack(pixels)).numpy()
            out = np.zeros((len(reasons), vectors.shape[1]), dtype=np.float32)
            out[kept] = vectors
        else:
            out = np.zeros((len(reasons), int(self.encoder.describe().get("dim") or 1)), dtype=np.float32)
        return {"index": np.asarray(batch["index"]), "vector": out, "sha": shas, "reason": reasons}
