"""Shared fixtures."""

import os

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


def _empty_postgres(url: str) -> None:
    from sqlalchemy import create_engine

    from doge.registry.models import Base

    engine = create_engine(url)
    try:
        Base.metadata.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request):
    """None (the default SQLite file in the home) or an emptied PostgreSQL database's URL."""
    if request.param == "sqlite":
        return None
    url = postgres_url()
    _empty_postgres(url)
    return url


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
