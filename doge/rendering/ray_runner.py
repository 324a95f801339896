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
from doge.net import is_loopback
from doge.rendering.batch import Output, OutputWriter, control_outputs, load_engine, load_source, render_batch
from doge.rendering.plan import Job, Plan

log = logging.getLogger("doge")

# How often Ray restarts an actor that died and redoes its batch before the run fails.
MAX_RESTARTS = 3
READ_CPUS = 0.25  # what a task reading sources asks of Ray


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
                max_task_retries=MAX_RESTARTS,
                # one actor per node before two on one: a cluster's nodes all render, and losing
                # one node costs the fewest actors
                scheduling_strategy="SPREAD",
                **resources,
            )
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
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


def actor_layout(resources: dict, device: str | None = None) -> tuple[int, dict]:
    """How many actors to start and what each asks Ray for: one per GPU, else one per CPU.

    One CPU (half, on a one-CPU cluster) is left to the tasks that read the sources: actors that
    take every CPU starve those tasks and the run never finishes.
    """
    cpus = float(resources.get("CPU", 1))
    gpus = int(resources.get("GPU", 0))
    if not gpus and (device or "").startswith("cuda"):
        raise DogeError(f"--device {device} with --ray, but the Ray cluster has no GPU; use --device auto or cpu")
    spare = cpus - min(1.0, cpus / 2)
    if gpus and not (device or "auto").startswith(("cpu", "mps")):
        return gpus, {"num_gpus": 1, "num_cpus": min(1.0, spare / gpus)}
    count = max(1, int(cpus))
    return count, {"num_cpus": spare / count}


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise DogeError("--ray needs Ray Data: pip install 'doge[ray]'") from None
    return ray


def _connect(ray, address: str, progress: bool) -> bool:
    """Start or join Ray unless this process already has; True if this call started it."""
    if ray.is_initialized():
        return False
    quiet = {} if progress else {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address in (None, "", "local"):
            _start_on_loopback(ray, quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise DogeError(
            f"--ray {address}: could not join a Ray cluster there ({first_line(exc)[:200]}); check the address, "
            "or give --ray without an address to start a local Ray"
        ) from None
    ray.data.DataContext.get_current().enable_progress_bars = progress
    return True


def _start_on_loopback(ray, quiet: dict) -> None:
    """Start a local Ray whose processes listen on 127.0.0.1 only.

    Ray gives a node it starts the machine's network address, so that other machines could join,
    and its GCS, raylet and workers then accept unauthenticated connections (which run whatever
    they are sent) from the network. Ray uses the loopback address instead when clusters are
    off (``ray_constants.ENABLE_RAY_CLUSTER``, read from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when
    Ray is imported); it is held off while this node starts, and the started node is checked.
    Joining a cluster (``--ray auto``, ``ray://``) is the user's choice and does not come here.
    """
    constants = _ray_constants()
    saved = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if saved is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(include_dashboard=False, **quiet)
    finally:
        if saved is not None:
            constants.ENABLE_RAY_CLUSTER = saved
    addresses = sorted({str(node.get("NodeManagerAddress")) for node in ray.nodes()})
    if not all(is_loopback(a) for a in addresses):
        ray.shutdown()
        raise DogeError(
            f"the local Ray started on {', '.join(addresses)}, not on 127.0.0.1, so it would take connections "
            "from the network (this Ray version does not let doge keep it on loopback); render without --ray, "
            "or start a Ray cluster you have secured and join it with --ray auto"
        )


def _ray_constants():
    try:
        from ray._private import ray_constants  # Ray 2.60 has no public switch for this
    except ImportError:  # a Ray that moved it: the check after the start still holds
        return None
    return ray_constants


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
