"""Eight processes creating versions of one gap at once get eight distinct versions."""

import numpy as np
from helpers import race

from doge.registry import Registry

NAME = "real->painting"
WORKERS = 8


def _vector(i: int) -> np.ndarray:
    return np.full(16, float(i), dtype=np.float32) + np.arange(16, dtype=np.float32)


def _create_one(home, url, i, barrier):
    barrier.wait(timeout=60)  # open the registry (schema creation included) and write together
    return Registry(home=home, url=url).create(NAME, _vector(i), {"worker": i}).version


def test_eight_processes_get_eight_distinct_versions(home, registry_url):
    outcomes = race(_create_one, [(str(home), registry_url, i) for i in range(WORKERS)])
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
