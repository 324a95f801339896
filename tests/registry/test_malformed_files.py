"""Deeply nested JSON in a gap file or a bundle manifest is refused in one line."""

import json
import struct
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from doge.cli.main import get_cli
from doge.errors import DogeError
from doge.registry import Registry
from doge.registry.bundles import MANIFEST, import_bundle


def blob_files(home) -> list[str]:
    root = home / "blobs"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def doge(*args, env=None):
    return CliRunner().invoke(get_cli(), [str(a) for a in args], env=env)


def one_line_error(result, *words):
    """The command failed with one 'Error:' line holding ``words``, and no traceback."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def safetensors_bytes(metadata: dict, dim: int = 4) -> bytes:
    header = {"gap": {"dtype": "F32", "shape": [dim], "data_offsets": [0, 4 * dim]}, "__metadata__": metadata}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + np.ones(dim, np.float32).tobytes()


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
