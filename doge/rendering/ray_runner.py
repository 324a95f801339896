"""``doge render --ray``: the same render plan on Ray Data, one actor per GPU (or CPU slot) holding a pipeline.

Ray tasks read the pending sources' bytes and Ray batches the jobs; each actor decodes its batch,
makes the controls and generates with the per-batch code a local run uses
(:func:`doge.rendering.batch.render_batch`), and sends PNG bytes and manifest lines back. The driver
alone writes, as results stream in, through the same :class:`~doge.rendering.batch.OutputWriter` as a
local run: images atomically, then their manifest lines. So the output folder need exist only
where the driver runs, lines never interleave, and an image whose batch Ray redid after an actor
died is written once. Sources are read by Ray's workers: on a cluster they must be readable from
every node, at the same path (a shared filesystem) or, with no shared folder, as a URL on an
object store (``s3://...``, see :mod:`doge.storage`) whose credentials every node has; the output
folder is written by the driver alone, so it may be a local folder or a URL too. doge must be
installed on every node.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import defaultdict

from doge.errors import DogeError, first_line
from doge.raycluster import MAX_RESTARTS, READ_CPUS, TASK_RETRIES, actor_layout, numpy_batches
from doge.raycluster import connect as _connect
from doge.raycluster import import_ray as _import_ray
from doge.rendering.batch import Output, OutputWriter, control_outputs, load_engine, load_source, render_batch
from doge.rendering.plan import Job, Plan

log = logging.getLogger("doge")


def run_on_ray(p: Plan, address: str, progress: bool = True) -> list[str]:
    """Render ``p.pending`` on Ray (``address``: "local", "auto" or "ray://…"); returns the images written."""
    ray = _import_ray()
    started = _connect(ray, address, progress)
    writer = OutputWriter(p.out, len(p.pending), progress)
    ray_data_log = logging.getLogger("ray.data")
    level = ray_data_log.level
    if not progress:
        ray_data_log.setLevel(logging.ERROR)  # Ray Data logs its progress at INFO, and warns that it does
    try:
        count, resources = actor_layout(ray.cluster_resources(), p.device)
        count = min(count, -(-len(p.pending) // p.batch_size))  # no more actors than batches
        log.info("rendering on Ray with %d actor(s), each asking for %s", count, resources)
        jobs = _read_sources(ray, p)
        with warnings.catch_warnings():
            # Ray 2.60 deprecates remote args without naming a replacement for these two; its
            # default, restarting forever, would loop on an image that crashes an actor every time.
            warnings.simplefilter("ignore", DeprecationWarning)
            results = jobs.map_batches(
                _RenderActor,
                fn_constructor_args=(p,),
                batch_size=p.batch_size,
                compute=ray.data.ActorPoolStrategy(size=count),
                max_restarts=MAX_RESTARTS,
                max_task_retries=TASK_RETRIES,
                # one actor per node before two on one: a cluster's nodes all render, and losing
                # one node costs the fewest actors
                scheduling_strategy="SPREAD",
                **resources,
            )
        with numpy_batches(results) as batches:
            for batch in batches:
                writer.write(_outputs(batch))
    except DogeError:
        raise
    except Exception as exc:
        raise DogeError(
            f"the Ray render failed ({type(exc).__name__}: {first_line(exc)[:200]}); the images finished so far are kept: "
            "fix the cause (see Ray's logs) and rerun the same command to resume"
        ) from exc
    finally:
        writer.close()
        ray_data_log.setLevel(level)
        if started:
            ray.shutdown()
    return writer.written


def _read_sources(ray, p: Plan):
    """A dataset of the pending jobs, one row each, carrying its source's bytes read by a Ray task."""
    by_source: dict[int, list[Job]] = defaultdict(list)
    for job in p.pending:
        by_source[job.source].append(job)
    paths = {index: p.sources.files[index] for index in by_source}

    def read(row: dict) -> list[dict]:
        from doge import storage

        index = int(row["source"])
        data = storage.read_bytes(paths[index])  # a failed read is retried by Ray, then fails the run
        return [
            {"source": j.source, "k": j.k, "weight": j.weight, "image": j.image, "data": data} for j in by_source[index]
        ]

    # Reading waits on the network, not the CPU: a quarter of one leaves room beside the actors, also
    # when a lost node's actors restart on the nodes that are left.
    return ray.data.from_items([{"source": index} for index in sorted(by_source)]).flat_map(read, num_cpus=READ_CPUS)


class _RenderActor:
    """Holds a loaded pipeline; turns a batch of job rows into output rows (PNG bytes, manifest lines)."""

    def __init__(self, plan: Plan):
        import ray

        self.plan = plan
        # Ray shows an actor only the GPU it was given, as cuda:0.
        device = "cuda" if ray.get_gpu_ids() else "mps" if plan.device == "mps" else "cpu"
        self.engine = load_engine(plan, device=device)

    def __call__(self, batch: dict) -> dict:
        try:
            outputs = self._render(batch)
        except DogeError as exc:
            # A user's mistake (a missing control map, out of GPU memory) is not retried; Ray
            # would hand the driver only its traceback's text, so it travels as data.
            return {"path": [""], "png": [b""], "entry": [""], "error": [str(exc)]}
        return {
            "path": [o.path for o in outputs],
            "png": [o.png for o in outputs],
            "entry": ["" if o.entry is None else json.dumps(o.entry) for o in outputs],
            "error": [""] * len(outputs),
        }

    def _render(self, batch: dict) -> list:
        jobs = [
            Job(int(s), int(k), float(w), str(i))
            for s, k, w, i in zip(batch["source"], batch["k"], batch["weight"], batch["image"])
        ]
        sources, outputs = {}, []
        for job, data in zip(jobs, batch["data"]):
            if job.source not in sources:
                sources[job.source] = source = load_source(self.plan, job.source, bytes(data))
                outputs += control_outputs(self.plan, source) if source is not None else []
        return outputs + render_batch(self.plan, self.engine, jobs, sources)


def _outputs(batch: dict) -> list:
    for error in batch["error"]:
        if error:
            raise DogeError(str(error))
    return [
        Output(str(path), bytes(png), json.loads(entry) if entry else None)
        for path, png, entry in zip(batch["path"], batch["png"], batch["entry"])
    ]
