"""Eight processes creating versions of one gap at once get eight distinct versions."""

import multiprocessing as mp

import numpy as np

from doge.registry import Registry

NAME = "real->painting"
WORKERS = 8


def _vector(i: int) -> np.ndarray:
    return np.full(16, float(i), dtype=np.float32) + np.arange(16, dtype=np.float32)


def _create_one(home, url, i, barrier, results):
    try:
        barrier.wait(timeout=60)  # open the registry (schema creation included) and write together
        gv = Registry(home=home, url=url).create(NAME, _vector(i), {"worker": i})
        results.put((i, gv.version, None))
    except BaseException as e:  # reported to the parent, which fails the test with it
        results.put((i, None, f"{type(e).__name__}: {e}"))


def test_eight_processes_get_eight_distinct_versions(home, registry_url):
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [
        ctx.Process(target=_create_one, args=(str(home), registry_url, i, barrier, results)) for i in range(WORKERS)
    ]
    try:
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()

    errors = [err for _, _, err in outcomes if err]
    assert not errors, errors
    version_of = {i: version for i, version, _ in outcomes}
    assert sorted(version_of.values()) == list(range(1, WORKERS + 1))

    registry = Registry(home=home, url=registry_url)
    listed = registry.list(NAME)
    assert [gv.version for gv in listed] == list(range(1, WORKERS + 1))
    assert len({gv.sha256 for gv in listed}) == WORKERS
    for i, version in version_of.items():
        gv = registry.resolve(f"{NAME}@v{version}")
        assert gv.provenance == {"worker": i}
        np.testing.assert_array_equal(registry.load_vector(gv), _vector(i))
    assert registry.create(NAME, _vector(99), {}).version == WORKERS + 1

