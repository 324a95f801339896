"""Shared fixtures."""

import logging
import os
import uuid

import pytest
from helpers import make_gap_home, postgres_schema, postgres_url

# Tests never reach a model hub, however pytest is started (huggingface_hub reads this on import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")


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
    from doge.testing import build_tiny_unclip

    return build_tiny_unclip(tmp_path_factory.mktemp("models") / "tiny-unclip", seed=0)


@pytest.fixture(scope="session")
def net(tiny_model, tmp_path_factory):
    """The tiny ControlNet with non-zero output layers, so that controls change images."""
    from doge.testing import build_active_controlnet

    return build_active_controlnet(tiny_model, tmp_path_factory.mktemp("nets") / "active", seed=1)


@pytest.fixture(scope="module")
def gap_home(request, tmp_path_factory, tiny_model, domains):
    """A registry holding real->painting@v1 made with the tiny model (and @v2 with the median
    estimator, in a module that sets ``GAP_ESTIMATORS = ("mean", "median")``), one per module."""
    estimators = getattr(request.module, "GAP_ESTIMATORS", ("mean",))
    return make_gap_home(tmp_path_factory.mktemp("home"), tiny_model, domains, estimators)


@pytest.fixture(scope="session")
def domains(tmp_path_factory):
    """Real photographs (skimage crops) and OpenCV-stylised paintings of other crops."""
    from doge.sample_data import write_domains

    return write_domains(tmp_path_factory.mktemp("data"), count=6, size=64)


# -- a real S3 protocol server on loopback -------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on a free loopback port, and the AWS settings that point s3fs at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
    }
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def bucket(s3_endpoint):
    """A new bucket for this test: its s3:// URL, a raw S3 client to look behind doge's back, and its name."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    name = f"test-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name)
    return f"s3://{name}", client, name


@pytest.fixture
def s3(bucket):
    """A registry remote's URL (team/gaps in a new bucket), the raw S3 client, and the bucket's name."""
    url, client, name = bucket
    return f"{url}/team/gaps", client, name


# -- PostgreSQL: a schema of its own, and a read-only role ----------------------------------


@pytest.fixture
def pg():
    with postgres_schema(postgres_url()) as url:
        yield url


@pytest.fixture
def reader(pg):
    """The URL of ``pg`` as a new LOGIN role that may only read (SELECT) the registry's tables."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    u = make_url(pg)
    role = f"doge_reader_{uuid.uuid4().hex[:10]}"
    schema_name = dict(u.query)["options"].split("=", 1)[1]
    admin = create_engine(pg, isolation_level="AUTOCOMMIT")

    def grant():
        with admin.connect() as conn:
            conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema_name} TO {role}"))

    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f"GRANT CONNECT ON DATABASE {u.database} TO {role}"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA {schema_name} TO {role}"))
    try:
        yield u.set(username=role, password=None).render_as_string(hide_password=False), grant
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))  # its grants
            conn.execute(text(f"DROP ROLE {role}"))
        admin.dispose()
