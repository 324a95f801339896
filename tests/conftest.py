"""Shared fixtures."""

import os
import uuid
from contextlib import contextmanager

import pytest

POSTGRES_ENV = "DOGE_TEST_POSTGRES_URL"


def postgres_url() -> str:
    """The test PostgreSQL's URL; skips the test without one (fails it on CI, where it must run)."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {POSTGRES_ENV} is not: point it at the test PostgreSQL")
        pytest.skip(f"set {POSTGRES_ENV} to run the registry tests on PostgreSQL")
    return url


@contextmanager
def postgres_schema(url: str):
    """A fresh, empty PostgreSQL schema for one test, as the URL that makes it the search path.

    Each test gets its own, so tests on the shared database (other runs at the same time
    included) never see each other's tables; the schema is dropped afterwards.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"doge_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request):
    """None (the default SQLite file in the home) or the URL of an empty PostgreSQL schema."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_schema(postgres_url()) as url:
        yield url


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def registry(home, registry_url):
    from doge.registry import Registry

    reg = Registry(home=home, url=registry_url)
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """The random tiny unCLIP model (plus ControlNet), built once for the whole run."""
    from doge.tiny import build_tiny_unclip

    return build_tiny_unclip(tmp_path_factory.mktemp("models") / "tiny-unclip", seed=0)


@pytest.fixture(scope="session")
def domains(tmp_path_factory):
    """Real photographs (skimage crops) and OpenCV-stylised paintings of other crops."""
    from doge.sample_data import write_domains

    return write_domains(tmp_path_factory.mktemp("data"), count=6, size=64)
