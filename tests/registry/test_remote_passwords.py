"""Passwords in a registry URL's query string are never printed nor stored in an origin."""

import json

import pytest
from helpers import doge, vec

from doge.registry import Registry
from doge.urls import hide_password

NAME = "real->painting"


# -- 4. passwords in the query string ------------------------------------------------------


@pytest.mark.parametrize(
    "url, secret",
    [
        ("postgresql+psycopg://u@db.example/gaps?password=S3cret", "S3cret"),
        ("postgresql://u:pw1@db.example:5432/gaps?sslmode=require&sslpassword=S3cret", "S3cret"),
        ("s3://bucket/gaps?token=S3cret&region=eu", "S3cret"),
        ("postgresql://db.example/gaps?secret_key=S3cret", "S3cret"),
    ],
)
def test_secrets_in_the_query_string_are_hidden(url, secret):
    shown = hide_password(url)
    assert secret not in shown and "pw1" not in shown and "***" in shown
    assert shown.split("?")[0].split("@")[-1] == url.split("?")[0].split("@")[-1]  # the host stays readable


def test_plain_urls_keep_their_spelling():
    for url in ["sqlite:////tmp/x.db", "sqlite:///rel.db", "postgresql://h/db?sslmode=require", "/plain/path"]:
        assert hide_password(url) == url


def test_remote_add_and_list_never_print_a_query_string_password(tmp_path):
    url = "postgresql+psycopg://u@127.0.0.1:1/gaps?password=S3cret"
    home = tmp_path / "home"
    added = doge("--home", home, "remote", "add", "team", url, "--blobs", tmp_path / "blobs")
    listed = doge("--home", home, "remote", "list")
    assert added.exit_code == 0 and listed.exit_code == 0, added.output + listed.output
    assert "S3cret" not in added.output + listed.output and "password=***" in listed.output


def test_a_pulled_versions_origin_holds_no_query_string_password(tmp_path):
    from doge.registry.transfer import pull

    src = Registry(home=tmp_path / "src")
    src.create(NAME, vec(0), {})
    src.url += "?password=S3cret"  # what the user typed; SQLite ignores nothing we rely on here
    dst = Registry(home=tmp_path / "dst")
    pull(src, [NAME], dst, "team")
    assert "S3cret" not in json.dumps(dst.resolve(NAME).provenance)
