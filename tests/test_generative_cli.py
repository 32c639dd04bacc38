"""``trustkit gen`` end to end on digits (train -> report, sample, interpolate, arithmetic, eval) and every
bad-input case: one line on stderr, exit code 2, nothing written."""
import json
import subprocess
import sys

import pandas as pd
import pytest
from PIL import Image

from trustkit.cli import run

from tests.helpers import HtmlCollector as _Collector, run_cli


pytestmark = pytest.mark.usefixtures("one_torch_thread")




@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_cnn):
    """A conditional GAN (with its report) and a VAE trained for two quick epochs on digits."""
    out = tmp_path_factory.mktemp("gen-reports")
    code = run(["-q", "gen", "train", "--model", "cgan", "--epochs", "2", "--n", "200", "--out", str(out)])
    assert code == 0
    code = run(["-q", "gen", "train", "--model", "vae", "--epochs", "2", "--no-eval", "--out", str(out)])
    assert code == 0
    return out


def test_train_writes_a_complete_self_contained_report(trained, trustkit_home):
    runs = sorted(p for p in trained.iterdir() if "cgan" in p.name)
    assert len(runs) == 1
    run_dir = runs[0]
    assert {p.name for p in run_dir.iterdir()} == {"report.html", "results.csv", "history.csv", "run.json"}
    metrics = pd.read_csv(run_dir / "results.csv")
    assert {"domain_fid", "domain_fid_real_floor", "kid", "precision", "recall", "modes_covered", "kl_to_uniform",
            "conditional_accuracy", "conditional_confident"} <= set(metrics["metric"])
    values = dict(zip(metrics["metric"], metrics["value"], strict=True))
    assert 0 <= values["precision"] <= 1 and 0 <= values["recall"] <= 1 and values["domain_fid"] > 0
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2] and {"d_loss", "g_loss"} <= set(history.columns)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["kind"] == "gen-train" and info["seed"] == 0 and info["device"].startswith("cpu")
    assert info["config"]["train"]["epochs"] == 2 and "torch" in info["versions"]
    assert info["model"]["checkpoint"] == str(trustkit_home / "checkpoints" / "gen-cgan-digits.safetensors")
    html = (run_dir / "report.html").read_text()
    parser = _Collector()
    parser.feed(html)
    assert all(s.startswith(("data:", "#")) for s in parser.sources), "the report must not load anything from outside"
    # loss curves + diagnostics, final samples, 2 epoch grids, interpolations, class histogram
    assert html.count("data:image/png;base64,") >= 7
    for section in ("Loss curves", "Samples after each epoch", "Latent interpolation", "Metrics", "Mode coverage",
                    "domain FID", "not comparable", "git commit"):
        assert section.lower() in html.lower(), section
    assert "<script" not in html.lower()


def test_sample_grids_and_class_conditional_grids(trained, tmp_path, capsys):
    code, out, err = run_cli(capsys, "gen", "sample", "--model", "cgan", "--per-class", "--columns", "4",
                             "--out", str(tmp_path / "grid.png"))
    assert code == 0, err
    assert "40 samples" in out
    with Image.open(tmp_path / "grid.png") as image:
        width, height = image.size
    assert height > 2 * width  # 10 rows of 4 digits
    code, out, err = run_cli(capsys, "gen", "sample", "--model", "gen-cgan-digits", "--class", "7", "--n", "5",
                             "--out", str(tmp_path / "sevens.png"))
    assert code == 0 and "5 samples" in out and (tmp_path / "sevens.png").is_file()


def test_interpolation_arithmetic_and_eval(trained, tmp_path, capsys):
    code, out, err = run_cli(capsys, "gen", "interpolate", "--model", "vae", "--pairs", "3", "--steps", "5",
                             "--out", str(tmp_path / "walk.png"))
    assert code == 0 and "3 interpolation strips of 5" in out, err
    code, out, err = run_cli(capsys, "gen", "interpolate", "--model", "vae", "--images", "--out",
                             str(tmp_path / "walk2.png"))
    assert code == 0, err
    code, out, err = run_cli(capsys, "gen", "arithmetic", "--model", "vae", "--attribute", "class=0", "--alpha",
                             "0,1,2,3", "--rows", "4", "--out", str(tmp_path / "plus-zero.png"))
    assert code == 0, err
    assert "attribute 'class=0'" in out and "‖v‖" in out
    with Image.open(tmp_path / "plus-zero.png") as image:
        assert image.size[0] > image.size[1]  # 4 rows × (input + 4 alphas)
    code, out, err = run_cli(capsys, "gen", "arithmetic", "--model", "cgan", "--attribute", "class=1",
                             "--out", str(tmp_path / "gan.png"))
    assert code == 0, err
    reports = tmp_path / "reports"
    code, out, err = run_cli(capsys, "gen", "eval", "--model", "vae", "--n", "100", "--iw-samples", "5",
                             "--nll-images", "50", "--out", str(reports))
    assert code == 0, err
    metrics = pd.read_csv(next(reports.iterdir()) / "results.csv")
    values = dict(zip(metrics["metric"], metrics["value"], strict=True))
    assert values["test_nll_iw"] > 0 and -values["test_elbo"] >= values["test_nll_iw"] - 1.0  # IW bound is tighter
    code, out, _ = run_cli(capsys, "gen", "list")
    assert code == 0 and "wgan-gp" in out and "gen-cgan-digits" in out


BAD_INPUTS = [
    (["gen", "train", "--model", "dcgna"], "did you mean 'dcgan'"),
    (["gen", "train", "--model", "dcgan", "--epochs", "0"], "--epochs must be at least 1"),
    (["gen", "train", "--model", "dcgan", "--dataset", "mnits"], "did you mean 'mnist'"),
    (["gen", "train", "--model", "dcgan", "--beta", "2"], "takes no option beta"),
    (["gen", "train", "--model", "vae", "--lr", "-1"], "--lr must be > 0"),
    (["gen", "train", "--model", "dcgan", "--dataset", "faces", "--data-root", "NOWHERE"], "faces not found"),
    (["gen", "sample", "--model", "wgan-gp"], "no trained 'wgan-gp' for digits"),
    (["gen", "sample", "--model", "vae", "--class", "3"], "not class-conditional"),
    (["gen", "sample", "--model", "cgan", "--class", "eleven"], "unknown class 'eleven'"),
    (["gen", "sample", "--model", "cgan", "--out", "OUT/grid.jpg"], "must end in .png"),
    (["gen", "sample", "--model", "missing/model.safetensors"], "not found"),
    (["gen", "sample", "--model", "cgan", "--dataset", "mnist"], "no trained 'cgan' for mnist"),
    (["gen", "sample", "--model", "gen-cgan-digits", "--dataset", "mnist"], "trained on digits"),
    (["gen", "arithmetic", "--model", "vae", "--attribute", "class~3"], "cannot read attribute"),
    (["gen", "arithmetic", "--model", "vae", "--attribute", "age>=60"], "digits has no attribute 'age'"),
    (["gen", "arithmetic", "--model", "vae", "--attribute", "class=3", "--alpha", "x"], "--alpha takes numbers"),
    (["gen", "arithmetic", "--model", "vae", "--attribute", "class=11"], "no training image"),
    (["gen", "interpolate", "--model", "cgan", "--images"], "has no encoder"),
    (["gen", "interpolate", "--model", "vae", "--steps", "1"], "at least 2 steps"),
    (["gen", "eval", "--model", "vae", "--n", "5"], "--n must be at least 10"),
    (["gen", "eval", "--model", "vae", "--classifier", "nope"], "unknown model 'nope'"),
]


@pytest.mark.parametrize("args, fragment", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_nothing_written(trained, tmp_path, capsys, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    args = [a.replace("NOWHERE", str(tmp_path / "nowhere")).replace("OUT", str(tmp_path / "out")) for a in args]
    extra = ["--out", str(tmp_path / "out")] if args[1] in ("train", "eval") else []
    code, out, err = run_cli(capsys, *args, *extra)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0]
    assert "Traceback" not in err
    assert not any(tmp_path.rglob("*.png")) and not (tmp_path / "out").exists()


def test_help_texts_name_the_subcommands(capsys):
    code, out, _ = run_cli(capsys, "gen", "--help")
    assert code == 0 and all(c in out for c in ("train", "sample", "interpolate", "arithmetic", "eval"))
    code, out, _ = run_cli(capsys, "gen", "arithmetic", "--help")
    assert code == 0 and "gender=female" in out and "z + α·v" in out


def test_console_script_exit_code(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "trustkit", "gen", "sample", "--model", "nope"], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown generative model 'nope'")


def test_report_escapes_user_strings_and_train_honours_checkpoint_path(tmp_path, capsys):
    target = tmp_path / "<b>x" / "my<i>ae.safetensors"
    code, out, err = run_cli(capsys, "gen", "train", "--model", "ae", "--latent-dim", "4", "--epochs", "1",
                             "--no-eval", "--checkpoint", str(target), "--out", str(tmp_path / "r"))
    assert code == 0, err
    from trustkit.models.store import read_metadata

    assert target.is_file() and read_metadata(target)["kind"] == "generative"
    html = next((tmp_path / "r").iterdir()).joinpath("report.html").read_text()
    assert "my<i>ae" not in html and "my&lt;i&gt;ae" in html and "<script" not in html.lower()
    code, out, err = run_cli(capsys, "gen", "sample", "--model", str(target), "--n", "4", "--out",
                             str(tmp_path / "ae.png"))
    assert code == 0 and (tmp_path / "ae.png").is_file(), err
