"""A local Ray that doge starts listens on loopback only: nothing on the network can reach it."""

import ipaddress
import os

import pytest

try:
    import psutil
    import ray
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("Ray is not installed: pip install 'doge[ray]'", allow_module_level=True)

from doge import raycluster
from doge.errors import DogeError
from doge.net import is_loopback


def listening(process: psutil.Process) -> set[tuple[str, int]]:
    try:
        conns = process.net_connections(kind="inet")
    except psutil.Error:  # a worker that exited meanwhile
        return set()
    return {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}


def loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


@pytest.fixture(scope="module")
def doge_ray():
    """A local Ray started the way `doge render --ray` starts one (once for the module), and the
    sockets its processes listen on: the driver's new ones and every process it started."""
    if ray.is_initialized():
        ray.shutdown()
    me = psutil.Process()
    before = listening(me)
    assert raycluster.connect(ray, "local", progress=False) is True

    @ray.remote(num_cpus=0)
    def work(x):
        return x + 1

    assert ray.get([work.remote(i) for i in range(3)]) == [1, 2, 3]  # workers are up and reachable
    sockets = {("driver", ip, port) for ip, port in listening(me) - before}
    for child in me.children(recursive=True):
        sockets |= {(child.name(), ip, port) for ip, port in listening(child)}
    yield sockets
    ray.shutdown()


def test_a_local_ray_listens_on_127_0_0_1_only(doge_ray):
    names = {name for name, _, _ in doge_ray}
    assert {"gcs_server", "raylet"} <= names, doge_ray  # the servers a remote attacker would reach
    exposed = sorted(s for s in doge_ray if not loopback(s[1]))
    assert exposed == [], f"listening beyond loopback: {exposed}"
    assert all(node["NodeManagerAddress"] == "127.0.0.1" for node in ray.nodes())


def test_loopback_addresses_are_told_from_network_ones():
    assert all(is_loopback(a) for a in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost"))
    assert not any(is_loopback(a) for a in ("192.0.2.2", "0.0.0.0", "::", "10.1.2.3"))


def test_a_local_ray_that_comes_up_on_the_network_is_stopped_and_refused():
    calls = []

    class FakeRay:  # a Ray that ignores the loopback switch
        def init(self, **kwargs):
            calls.append("init")

        def nodes(self):
            return [{"NodeManagerAddress": "192.0.2.2"}]

        def shutdown(self):
            calls.append("shutdown")

    with pytest.raises(DogeError, match="192.0.2.2, not on 127.0.0.1.*render without --ray"):
        raycluster.start_on_loopback(FakeRay(), {})
    assert calls == ["init", "shutdown"]
