"""Deeply nested JSON in a gap file or a bundle manifest is refused in one line."""

import zipfile

import pytest
from helpers import blob_files, doge, one_line_error, safetensors_bytes

from doge.errors import DogeError
from doge.registry import Registry
from doge.registry.bundles import MANIFEST, import_bundle

# -- 2. deeply nested JSON -----------------------------------------------------------------


def test_deeply_nested_provenance_in_a_gap_file_is_refused_in_one_line(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "deep.safetensors"
    path.write_bytes(safetensors_bytes({"doge.name": "deep", "doge.provenance": deep}))
    home = tmp_path / "home"
    one_line_error(doge("--home", home, "gap", "import", path), str(path), "not a JSON object")
    assert blob_files(home) == []


def test_deeply_nested_bundle_manifest_is_refused_in_one_line(tmp_path):
    path = tmp_path / "deep.doge"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MANIFEST, "{" + '"a":{' * 100_000 + "}" * 100_001)
    with pytest.raises(DogeError, match="not valid JSON"):
        import_bundle(Registry(home=tmp_path / "home"), path)
