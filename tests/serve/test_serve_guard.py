"""doge serve under attack: a Host allow-list against DNS rebinding, JSON bodies too deep or too
large, a busy SQLite registry answered 503 with Retry-After in seconds, tokens parsed strictly, and
warnings printed only once the address resolved."""

import re
import sqlite3
import time

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from doge.cli.main import get_cli
from doge.errors import DogeError
from doge.registry import Registry

TOKEN = "alice:s3cret-token-1"
AUTH = {"Authorization": "Bearer s3cret-token-1"}
TAG = "/api/gaps/real-%3Epainting@v1/tag"


@pytest.fixture
def registry(tmp_path):
    reg = Registry(home=tmp_path / "home")
    reg.create("real->painting", np.ones(4, dtype=np.float32), {})
    yield reg
    reg.close()


def app(registry, **options):
    from doge.serve.app import create_app
    from doge.serve.auth import parse_tokens

    return create_app(registry, allow_writes=True, tokens=parse_tokens(TOKEN), **options)


def doge(home, *args, env=None):
    return CliRunner().invoke(get_cli(), ["--home", str(home), "--quiet", *map(str, args)], env=env)


# -- Host -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "testserver", ""])
def test_a_host_the_server_does_not_serve_is_refused_400(registry, host):
    client = TestClient(app(registry), base_url="http://127.0.0.1:8000")
    for path in ["/", "/api/gaps", "/api/gaps/real-%3Epainting@v1/safetensors"]:
        answer = client.get(path, headers={"Host": host})
        assert answer.status_code == 400, (host, path)
        assert "--allow-host" in answer.text and "real-" not in answer.text
    answer = client.post(TAG, json={"alias": "prod"}, headers={"Host": host, **AUTH})
    assert answer.status_code == 400 and registry.resolve("real->painting").aliases == ()


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "localhost."])
def test_loopback_names_are_served(registry, host):
    client = TestClient(app(registry), base_url="http://127.0.0.1:8000")
    assert client.get("/api/gaps", headers={"Host": host}).status_code == 200


def test_the_bound_name_and_allow_host_names_are_served(registry):
    from doge.serve.guard import allowed_hosts

    hosts = allowed_hosts("gaps.lab", ["proxy.example.org"])
    client = TestClient(app(registry, hosts=hosts), base_url="http://127.0.0.1")
    for host in ["gaps.lab:8000", "proxy.example.org", "PROXY.example.org:443", "127.0.0.1"]:
        assert client.get("/api/gaps", headers={"Host": host}).status_code == 200, host
    assert client.get("/api/gaps", headers={"Host": "other.example"}).status_code == 400
    everything = TestClient(app(registry, hosts=allowed_hosts("127.0.0.1", ["*"])))
    assert everything.get("/api/gaps").status_code == 200  # '*': a proxy in front checks Host


# -- bodies ---------------------------------------------------------------------------------------


def test_a_body_nested_100000_levels_deep_is_400_not_500(registry):
    client = TestClient(app(registry), base_url="http://127.0.0.1", raise_server_exceptions=False)
    for levels in (100_000, 10_000):  # 200 kB (over the size limit), 20 kB (under it)
        body = '{"alias": ' + "[" * levels + "]" * levels + "}"
        answer = client.post(TAG, content=body, headers={**AUTH, "Content-Type": "application/json"})
        assert answer.status_code == 400, levels
    assert "nested more than 16 levels" in answer.json()["error"]
    deep = '{"set": ' + '{"a": ' * 20 + "1" + "}" * 20 + "}"
    answer = client.post(
        "/api/gaps/real-%3Epainting@v1/labels", content=deep, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert registry.resolve("real->painting").labels == {}


def test_a_body_too_large_is_400_and_not_read_whole(registry):
    client = TestClient(app(registry), base_url="http://127.0.0.1", raise_server_exceptions=False)
    huge = '{"alias": "' + "a" * 2_000_000 + '"}'
    answer = client.post(TAG, content=huge, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 400 and "larger than" in answer.json()["error"]

    def chunks():  # no Content-Length: the limit holds on the stream itself
        yield b'{"alias": "'
        for _ in range(200):
            yield b"a" * 10_000
        yield b'"}'

    answer = client.post(TAG, content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 400 and "larger than" in answer.json()["error"]


def test_brackets_inside_strings_are_not_depth():
    from doge.serve.guard import _depth_over

    assert not _depth_over(b'{"alias": "[[[[[[[[[[[[[[[[[[[[[[[[[[\\"[[[["}', 16)
    assert _depth_over(b"[" * 17, 16)


# -- a busy registry ------------------------------------------------------------------------------


def test_a_busy_sqlite_registry_is_503_with_retry_after_within_seconds(registry):
    registry = Registry(home=registry.home, busy_timeout_s=1)  # doge serve's is a few seconds
    client = TestClient(app(registry), base_url="http://127.0.0.1", raise_server_exceptions=False)
    other = sqlite3.connect(registry.url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another tool holds the file
    try:
        for method, path, kwargs in [
            ("get", "/", {}),
            ("get", "/gaps/real-%3Epainting@v1", {}),
            ("get", "/api/gaps", {}),
            ("post", TAG, {"json": {"alias": "prod"}, "headers": AUTH}),
        ]:
            started = time.monotonic()
            answer = getattr(client, method)(path, **kwargs)
            took = time.monotonic() - started
            assert answer.status_code == 503, (path, answer.status_code, answer.text[:200])
            assert answer.headers["Retry-After"] == "2" and took < 5, (path, took)
            assert "busy" in answer.text
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert client.post(TAG, json={"alias": "prod"}, headers=AUTH).status_code == 200


def test_the_cli_serves_with_a_short_busy_timeout():
    from doge.cli import serve

    assert 1 <= serve.BUSY_TIMEOUT_S <= 5


# -- tokens and start-up --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, says",
    [
        ("alice:abcdefgh12,bob:abcdefgh12", "entry 2 (bob) repeats the token of alice"),
        ("alice:abcdefgh12,alice:abcdefgh12", "repeats the token of alice"),
        (":abcdefgh12", "entry 1 has no user name"),
        (" :abcdefgh12", "entry 1 has no user name"),
        ("alice:short", "at least 8"),
    ],
)
def test_tokens_are_parsed_strictly(text, says):
    from doge.serve.auth import parse_tokens

    with pytest.raises(DogeError, match=re.escape(says)):
        parse_tokens(text)


def test_serve_refuses_bad_tokens_at_start_in_one_line(tmp_path, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: pytest.fail("served"))
    result = doge(
        tmp_path, "serve", "--allow-writes", "--port", "0", env={"DOGE_SERVE_TOKEN": "a:abcdefgh12,b:abcdefgh12"}
    )
    assert result.exit_code == 1 and result.output.strip().splitlines() == [
        "Error: DOGE_SERVE_TOKEN: entry 2 (b) repeats the token of a; give each user their own token"
    ]


def test_an_unresolvable_host_is_one_error_line_and_no_warning(tmp_path, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: pytest.fail("served"))
    result = doge(tmp_path, "serve", "--host", "no-such-host.invalid", "--port", "0")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot listen on no-such-host.invalid"), lines
    assert "anyone who can reach" not in result.output


def test_a_wildcard_host_warns_once_bound_and_names_the_hosts_it_answers(tmp_path, monkeypatch):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: served.extend(sockets or []))
    result = doge(tmp_path, "serve", "--host", "0.0.0.0", "--port", "0", "--allow-host", "gaps.example.org")
    for sock in served:
        sock.close()
    assert result.exit_code == 0, result.output
    assert "anyone who can reach this address can read the library" in result.output
    assert "gaps.example.org" in result.output and "--allow-host" in result.output
