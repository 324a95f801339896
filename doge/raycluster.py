"""Joining or starting Ray for doge's work on a cluster (``--ray``): render actors
(:mod:`doge.rendering.ray_runner`) and encoding actors (:mod:`doge.data.ray_encoding`) share how a
cluster is joined, how a local one is kept on loopback, and how many actors ask for what."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from doge.errors import DogeError, first_line
from doge.net import is_loopback

# How often Ray restarts an actor that died and redoes its batch before the run fails.
MAX_RESTARTS = 3
# A batch sent to an actor whose node just died fails as "temporarily unavailable" until Ray has
# noticed the death (seconds) and restarted the actor elsewhere: such a batch is retried until then.
# The restarts above bound it: an image that kills its actor every time still ends the run.
TASK_RETRIES = -1
# What a task reading sources asks of Ray: reading waits on the network, not the CPU, and a quarter
# of one leaves room beside the actors, also when a lost node's actors restart on the nodes left.
READ_CPUS = 0.25


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


def import_ray() -> ModuleType:
    try:
        import ray
        import ray.data
    except ImportError:
        raise DogeError("--ray needs Ray Data: pip install 'doge[ray]'") from None
    return ray


def connect(ray, address: str, progress: bool) -> bool:
    """Start or join Ray unless this process already has; True if this call started it."""
    if ray.is_initialized():
        return False
    quiet = {} if progress else {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address in (None, "", "local"):
            start_on_loopback(ray, quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise DogeError(
            f"--ray {address}: could not join a Ray cluster there ({first_line(exc)[:200]}); check the address, "
            "or give --ray without an address to start a local Ray"
        ) from None
    ray.data.DataContext.get_current().enable_progress_bars = progress
    return True


def start_on_loopback(ray, quiet: dict) -> None:
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


def _ray_constants() -> Any:  # ray's ray_constants module (ModuleType refuses the flag set on it), or None
    try:
        from ray._private import ray_constants  # Ray 2.60 has no public switch for this
    except ImportError:  # a Ray that moved it: the check after the start still holds
        return None
    return ray_constants


@contextmanager
def numpy_batches(dataset) -> Iterator:
    """The Ray Data ``dataset``'s batches as numpy, as a stream that is closed on leaving the block.

    Closing stops Ray Data's executor thread before the caller shuts Ray down: left running (a batch
    that raised mid-stream), that thread touches the shut-down worker and Ray ends the whole process."""
    stream = iter(dataset.iter_batches(batch_size=None, batch_format="numpy"))
    try:
        yield stream
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
