"""doge serve against hostile queries and a taken port: one line or a clean status, never a server error."""

import pytest
from helpers import doge


@pytest.fixture(scope="module")
def home(gap_home):
    """conftest's registry holding real->painting@v1, shared by this module's tests."""
    return gap_home


# -- doge serve: hostile queries ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/?page=99999999999999999999999", 200),  # once a 500 (SQLite OverflowError on the offset)
        ("/?page=-5", 200),
        ("/api/gaps/real-%3Epainting@v1/attachments/99999999999999999999999", 404),  # once a 500
        ("/api/gaps/real-%3Epainting@v1/attachments/0", 404),
    ],
)
def test_serve_answers_huge_numbers_without_a_server_error(home, url, status):
    from starlette.testclient import TestClient

    from doge.registry import Registry
    from doge.serve.app import create_app

    registry = Registry(home=home)
    try:
        response = TestClient(create_app(registry), base_url="http://127.0.0.1", raise_server_exceptions=False).get(url)
    finally:
        registry.close()
    assert response.status_code == status, response.text[:300]
    if url.startswith("/?"):  # a page past the end shows the last page, with the gap on it
        assert "real-&gt;painting" in response.text or "real->painting" in response.text
    else:
        assert "has no preview or plot" in response.json()["error"]


# -- doge serve: a port already taken -------------------------------------------------------------


def test_serve_on_a_taken_port_is_one_line_and_announces_nothing(home):
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        # once: 'doge serve: http://127.0.0.1:PORT/' printed as if serving, then uvicorn's ERROR, exit 3
        result = doge("--home", home, "serve", "--port", port)
    finally:
        taken.close()
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port} (address already in use): pick another --port or stop what holds it"
    ]


def test_serve_on_port_0_announces_the_port_it_got(home, monkeypatch):
    import uvicorn

    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: served.extend(sockets or []))
    result = doge("--home", home, "serve", "--port", "0")
    assert result.exit_code == 0, result.output
    port = served[0].getsockname()[1]
    served[0].close()
    assert port > 0 and f"doge serve: http://127.0.0.1:{port}/ (read-only)" in result.output
