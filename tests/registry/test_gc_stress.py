"""gc never races a write: creates, removes and previews beside a `gc --grace 0` loop, on SQLite and
PostgreSQL. Every create succeeds and `registry check` finds nothing wrong afterwards."""

import io
import threading
import time

import numpy as np
from PIL import Image

from doge.registry import Registry
from doge.registry.fsck import check, gc

SECONDS = 3.0  # at least this long, and until each writer has made MIN_CREATES
MIN_CREATES = 3
CAP_SECONDS = 120.0  # a starved shared machine may need longer; past this the test fails


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed % 256, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_creates_and_removes_beside_a_gc_loop_all_succeed_and_check_is_clean(home, registry_url):
    registries = [Registry(home=home, url=registry_url) for _ in range(3)]
    errors: list[str] = []
    created = [0, 0]
    stop = threading.Event()

    def writer(i: int, reg: Registry) -> None:
        rng = np.random.default_rng(i)
        n = 0
        while not stop.is_set():
            try:
                gv = reg.create(f"stress-{i}", rng.normal(size=64).astype(np.float32), {"n": n})
                reg.add_attachment(gv, png(n), "preview", {"n": 1})
                created[i] += 1
                if n % 2:  # every other version goes again: its blobs become gc's to collect
                    reg.remove(gv)
                n += 1
            except Exception as e:
                errors.append(f"writer {i}: {type(e).__name__}: {e}")
                return

    def collector(reg: Registry) -> None:
        while not stop.is_set():
            try:
                gc(reg, grace_s=0)
            except Exception as e:
                errors.append(f"gc: {type(e).__name__}: {e}")
                return

    threads = [threading.Thread(target=writer, args=(i, registries[i])) for i in range(2)]
    threads.append(threading.Thread(target=collector, args=(registries[2],)))
    for t in threads:
        t.start()
    started = time.monotonic()
    while not errors and time.monotonic() - started < CAP_SECONDS:
        if time.monotonic() - started >= SECONDS and min(created) >= MIN_CREATES:
            break
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == []
        assert min(created) >= MIN_CREATES, created  # the loop really ran beside gc
        gc(registries[2], grace_s=0)
        report = check(registries[2])
        assert report.ok, report.problems
        assert report.unreferenced == []
        for i in range(2):
            for gv in registries[i].list(f"stress-{i}"):
                registries[i].load_vector(gv)  # every blob that a row names is there, whole
                assert [p["kind"] for p in registries[i].previews(gv)] == ["preview"]
    finally:
        for reg in registries:
            reg.close()


def test_a_temp_file_of_a_write_in_progress_survives_gc_with_no_grace(registry):
    gv = registry.create("x", np.ones(4, dtype=np.float32), {})
    in_flight = registry.blobs.path(gv.sha256).parent / f".{gv.sha256}.safetensors.k3j2.part"
    in_flight.write_bytes(b"half of a blob being written")
    result = gc(registry, grace_s=0)
    assert in_flight.exists() and result["leftovers_removed"] == []
