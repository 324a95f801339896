"""`make demo`: the README's first command, offline, end to end."""

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_demo_creates_shows_and_renders_a_gap_and_says_the_model_is_noise(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "doge.demo", str(out)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "created real->painting@v1" in result.stdout
    assert "random tiny test model" in result.stderr and "noise" in result.stderr
    lines = [json.loads(line) for line in (out / "render" / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(line["tiny_model"] for line in lines)
    assert (out / "render" / "grid" / "grid_000.png").is_file()
    assert f"demo outputs are under {out}" in result.stdout
