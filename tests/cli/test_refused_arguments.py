"""Arguments render and augment refuse before any work: nan and inf, an output inside the source,
budgets beyond reason, two sources that would share an output name."""

import pytest
from helpers import doge
from PIL import Image

FAST = ["--size", "64", "--steps", "2"]


@pytest.fixture(scope="module")
def home(gap_home):
    """conftest's registry holding real->painting@v1, shared by this module's tests."""
    return gap_home


# -- numbers that are not numbers: nan and inf --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--gap", "real->painting:nan"], "bad weight in 'real->painting:nan'"),
        (["--gap", "real->painting:-inf"], "bad weight in 'real->painting:-inf'"),
        (["--gap", "real->painting", "--edit-weight", "nan"], "--edit-weight nan: give a finite number"),
        (["--gap", "real->painting", "--edit-weight", "inf"], "--edit-weight inf: give a finite number"),
        (["--gap", "real->painting", "--guidance", "nan"], "--guidance nan: give a finite number"),
        (["--gap", "real->painting", "--controlnet-scale", "inf"], "--controlnet-scale inf: give a finite number"),
        (["--gap", "real->painting", "--lora-scale", "nan"], "--lora-scale nan: give a finite number"),
        (["--gap", "real->painting", "--sweep", "0:nan:3"], "--sweep '0:nan:3': write START:STOP:COUNT"),
    ],
)
def test_render_refuses_nan_and_inf_before_any_model_loads(
    home, tiny_model, domains, tmp_path, monkeypatch, args, said
):
    # each once rendered a folder of black images (NaN embeddings or guidance), exit status 0
    def no_model(*a, **k):
        pytest.fail("the model loaded before the numbers were checked")

    monkeypatch.setattr("doge.rendering.loading.load_pipeline", no_model)
    out = tmp_path / "out"
    result = doge("--home", home, "--quiet", "render", *args, "--src", domains["real"], "--out", out, "--model", tiny_model,
                  "--control", "none", *FAST)  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and said in line, result.output
    assert not (out / "images").exists() or not any((out / "images").iterdir())


@pytest.mark.parametrize(("args", "said"), [(["--ratio", "nan"], "--ratio nan"), (["--ratio", "inf"], "--ratio inf")])
def test_augment_refuses_a_nan_or_infinite_ratio(home, domains, tmp_path, args, said):
    argv = ["augment", domains["real"], "--gap", "real->painting", "--out", tmp_path / "o", *args, "--dry-run"]
    result = doge("--home", home, *argv)
    assert (result.exit_code == 1 and result.exception is None) or isinstance(result.exception, SystemExit), (
        result.output
    )
    assert said in result.output and "give a finite number" in result.output, result.output


# -- an output folder inside the source folder ------------------------------------------------


@pytest.mark.parametrize("inside", [".", "out", "cat/out"])
def test_render_refuses_an_out_inside_src(home, tiny_model, tmp_path, monkeypatch, inside):
    # once: the rerun of the same command took the first run's images for sources of a class "out"
    monkeypatch.setattr("doge.rendering.loading.load_pipeline", lambda *a, **k: pytest.fail("model loaded"))
    src = tmp_path / "src dir"
    (src / "cat").mkdir(parents=True)
    Image.new("RGB", (64, 48), "grey").save(src / "cat" / "a.png")
    out = src / inside
    result = doge("--home", home, "--quiet", "render", "--gap", "real->painting", "--src", src, "--out", out,
                  "--model", tiny_model, "--control", "none", *FAST)  # fmt: skip
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and "inside --src" in line and "outside" in line, result.output
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == ["cat", "cat/a.png"]


@pytest.mark.parametrize(("out", "work"), [("aug", None), ("../aug", "work")])
def test_augment_refuses_an_out_or_work_area_inside_src(home, tmp_path, out, work):
    src = tmp_path / "src"
    (src / "cat").mkdir(parents=True)
    Image.new("RGB", (64, 48), "grey").save(src / "cat" / "a.png")
    args = ["--work", src / work] if work else []
    result = doge("--home", home, "augment", src, "--gap", "real->painting", "--out", src / out, "--count", "1", *args)
    assert result.exit_code == 1, result.output
    assert "inside" in result.output and "Traceback" not in result.output, result.output
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == ["cat", "cat/a.png"]


# -- budgets beyond reason ------------------------------------------------------------------------


def test_render_refuses_a_hundred_million_images_at_once(home, tiny_model, domains, tmp_path):
    # once: minutes and gigabytes of planning before the first image, then a hang
    result = doge("--home", home, "--quiet", "render", "--gap", "real->painting", "--src", domains["real"], "--out",
                  tmp_path / "o", "--model", tiny_model, "--control", "none", "--count", "100000000", *FAST)  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "--count asks for 100000000 images; one run makes at most 1000000" in result.output


@pytest.mark.parametrize(("args", "said"), [(["--per-class", "10000000"], "--per-class asks for"),
                                            (["--ratio", "1e9"], "--ratio asks for")])  # fmt: skip
def test_augment_refuses_a_budget_beyond_a_million_images_even_dry(home, domains, tmp_path, args, said):
    result = doge("--home", home, "augment", domains["real"], "--gap", "real->painting", "--out", tmp_path / "o", *args,
                  "--dry-run")  # fmt: skip
    assert result.exit_code == 1 and said in result.output and "split the work" in result.output, result.output


# -- two sources, one output name ----------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), [("x/a.png", "x/a.jpg"), ("x__y/z.png", "x/y__z.png")])
def test_two_sources_that_would_share_output_names_are_refused(home, tiny_model, tmp_path, monkeypatch, first, second):
    # once: 2 sources, 1 image written, the other silently counted as "already there"
    monkeypatch.setattr("doge.rendering.loading.load_pipeline", lambda *a, **k: pytest.fail("model loaded"))
    src = tmp_path / "src"
    for i, rel in enumerate((first, second)):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (i * 80, 0, 0)).save(src / rel)
    result = doge("--home", home, "--quiet", "render", "--gap", "real->painting", "--src", src, "--out", tmp_path / "out",
                  "--model", tiny_model, "--control", "none", *FAST)  # fmt: skip
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and first in line and second in line and "rename one" in line, result.output


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["gap", "create", "a->b", "--src", ".", "--tgt", ".", "--classes", "x"], "--classes, --classes-from"),
        (["gap", "create", "a->b", "--src-text", "a {}", "--tgt-text", "b {}", "--ray"], "drop --ray"),
        (["gap", "eval", "a->b", "--src", ".", "--tgt", ".", "--weights", "abc"], "--weights 'abc'"),
        (["render", "--gap", "a->b", "--src", ".", "--out", "o", "--sweep", "1:2:1"], "COUNT must be at least 2"),
    ],
)
def test_a_refused_command_opens_no_registry(tmp_path, argv, said):
    # an unreachable --registry would hide the real mistake, and a fresh --home would gain a database
    home = tmp_path / "home"
    result = doge("--home", home, *argv)
    assert result.exit_code != 0 and said in result.output, result.output
    assert not home.exists()
    unreachable = ["--registry", "postgresql+psycopg://nobody@127.0.0.1:9/none"]
    result = doge(*unreachable, "--home", home, *argv)
    assert said in result.output and not home.exists(), result.output


@pytest.mark.parametrize("out", [None, "", "  "])
def test_no_output_folder_is_refused_not_taken_as_the_working_directory(home, tmp_path, monkeypatch, out):
    import doge
    from doge.errors import DogeError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    with pytest.raises(DogeError, match="give --out: the folder"):
        doge.augment(tmp_path / "src", ["real->painting"], out, per_class=1, home=home)
    with pytest.raises(DogeError, match="give --out: the folder"):
        doge.render(["real->painting"], tmp_path / "src", out, home=home)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no folder named "None", nothing written here


def test_augment_refuses_an_unknown_control_before_making_out(home, domains, tmp_path):
    from helpers import write_class_folders

    src = write_class_folders(tmp_path / "train", domains, count=2)
    out = tmp_path / "aug"
    result = doge("--home", home, "augment", src, "--gap", "real->painting", "--out", out, "--per-class", "1",
                  "--control", "blur")  # fmt: skip
    assert result.exit_code != 0 and "unknown control 'blur'" in result.output, result.output
    assert not out.exists() and not (tmp_path / ".aug.doge-work").exists()
