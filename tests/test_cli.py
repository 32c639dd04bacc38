"""The CLI end to end on digits (bad input: tests/test_bad_input.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from trustkit.cli import run

from tests.helpers import HtmlCollector as _Collector, run_cli

REQUIRED_COLUMNS = {"model", "dataset", "attack", "norm", "eps", "n", "clean_accuracy", "robust_accuracy",
                    "success_rate", "mean_linf", "mean_l2", "seconds"}




def test_bench_end_to_end_writes_parseable_reports(tmp_path, capsys, digits_cnn):
    code, out, err = run_cli(capsys, "bench", "fgsm,pgd", "--model", "cnn", "--out", str(tmp_path), "--n", "120",
                             "--eps", "0.1", "--eps", "0.2,0.3", "--steps", "5")
    assert code == 0, err
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1
    run_dir = runs[0]
    assert f"report: {run_dir / 'report.html'}" in out
    results = pd.read_csv(run_dir / "results.csv")
    assert REQUIRED_COLUMNS <= set(results.columns)
    assert len(results) == 6 and set(results["attack"]) == {"fgsm", "pgd"}
    assert results["n"].eq(120).all()
    assert results["robust_accuracy"].between(0, 1).all() and results["clean_accuracy"].gt(0.9).all()
    assert (results["robust_accuracy"] <= results["clean_accuracy"]).all()
    assert results.sort_values("eps").groupby("attack")["robust_accuracy"].is_monotonic_decreasing.all()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["seed"] == 0 and info["config"]["eps"] == [0.1, 0.2, 0.3]
    assert info["versions"]["torch"] == torch.__version__.split("+")[0] or info["versions"]["torch"].startswith(
        torch.__version__.split("+")[0])
    assert info["device"].startswith("cpu") and {c["status"] for c in info["sanity_checks"]} <= {"pass", "flag", "skipped"}
    pgd_cells = [a for a in info["attacks"] if a["cell"].startswith("pgd linf eps 0.1 ")]
    assert len(pgd_cells) == 1 and pgd_cells[0]["steps"] == 5
    assert info["cells"] == {"total": 6, "computed": 6, "from_cache": 0, "failed": 0}
    html = (run_dir / "report.html").read_text()
    parser = _Collector()
    parser.feed(html)
    assert {"table", "img", "details"} <= set(parser.tags)
    assert all(s.startswith(("data:", "#")) for s in parser.sources), "report must not load anything from outside"
    assert html.count("data:image/png;base64,") >= 1 + 6 * 3 * 1  # curve + gallery triples + heat maps
    for section in ("Accuracy under attack", "Sanity checks", "What the attack does to images", "per class", "git commit"):
        assert section.lower() in html.lower()
    per_class = pd.read_csv(run_dir / "per_class.csv")
    assert set(per_class["class_name"].astype(str)) == {str(d) for d in range(10)}


def test_same_seed_gives_identical_results(tmp_path, capsys, digits_cnn):
    for sub in ("a", "b"):
        assert run_cli(capsys, "bench", "pgd", "--model", "cnn", "--n", "60", "--eps", "0.1", "--steps", "3",
                       "--out", str(tmp_path / sub))[0] == 0
    first, second = (pd.read_csv(next((tmp_path / s).iterdir()) / "results.csv") for s in ("a", "b"))
    columns = ["robust_accuracy", "success_rate", "mean_linf", "mean_l2"]
    pd.testing.assert_frame_equal(first[columns], second[columns])


# The bad-input battery lives in tests/test_bad_input.py.


def test_pickled_checkpoint_and_missing_data_and_wrong_shape(tmp_path, capsys, digits_cnn, trustkit_home):
    pickled = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, pickled)
    cases = [
        (["--model", str(pickled)], "pickled PyTorch file"),
        (["--dataset", "mnist", "--data-root", str(tmp_path / "nowhere")], "MNIST not found"),
        (["--model", str(trustkit_home / "checkpoints" / "cnn-digits.safetensors"), "--dataset", "mnist"],
         "use --dataset digits"),
    ]
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 16)
    (tmp_path / "corrupt.json").write_text(json.dumps({"format": "trustkit-checkpoint", "arch": "cnn",
                                                       "dataset": "digits"}))
    cases.append((["--model", str(corrupt)], "corrupt"))
    for extra, fragment in cases:
        out_dir = tmp_path / "reports"
        code, _, err = run_cli(capsys, "bench", "fgsm", *extra, "--out", str(out_dir))
        assert code == 2 and err.count("\n") == 1 and fragment in err, err
        assert not out_dir.exists() or not any(out_dir.iterdir())


def test_debug_shows_traceback(capsys):
    with pytest.raises(Exception, match="did you mean"):
        run(["--debug", "bench", "fgsn"])


def test_list_and_help(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "resnet" in out and "fgsm" in out and "digits" in out
    code, out, _ = run_cli(capsys, "bench", "--help")
    assert code == 0 and "--eps" in out and "8/255" in out


@pytest.mark.parametrize("command", [("bench",), ("train",), ("bench", "substitute")])
def test_help_names_every_zoo_model_and_data_set(capsys, command):
    """The --model / --dataset help is written out by hand (importing torch for --help would be slow)."""
    from trustkit.data import DATASETS
    from trustkit.models import MODELS

    code, out, _ = run_cli(capsys, *command, "--help")
    flat = " ".join(out.split())
    assert code == 0
    assert all(name in flat for name in DATASETS.names()), flat
    if command != ("bench", "substitute"):  # the substitute's --substitute lists the zoo instead
        assert all(name in flat for name in MODELS.names()), flat
    else:
        assert all(name in flat.split("--substitute", 1)[1] for name in MODELS.names()), flat


def test_console_script_exit_code_and_train(tmp_path):
    """The installed entry point, in a real process: train into --out, then bench that checkpoint."""
    target = tmp_path / "my-softmax.safetensors"
    done = subprocess.run([sys.executable, "-m", "trustkit", "-q", "train", "--model", "softmax", "--epochs", "3",
                           "--out", str(target)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    from trustkit.models.store import read_metadata

    assert target.is_file() and not target.with_suffix(".json").exists() and "test accuracy" in done.stdout
    assert read_metadata(target)["arch"] == "softmax"  # the metadata lives in the one file
    done = subprocess.run([sys.executable, "-m", "trustkit", "bench", "fgsm", "--model", str(target), "--eps", "0.1",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run([sys.executable, "-m", "trustkit", "bench", "nope"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown attack 'nope'")
    assert Path(tmp_path / "r").is_dir()


def test_long_work_prints_epoch_lines_without_a_terminal(tmp_path):
    """In a log (no terminal, so no progress bar) finished epochs are lines — the first, the last, and one at most
    every 10 s between (a 3-epoch softmax takes well under 10 s); --quiet silences them."""
    command = [sys.executable, "-m", "trustkit", "train", "--model", "softmax", "--epochs", "3",
               "--out", str(tmp_path / "m.safetensors")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    epochs = [line for line in done.stderr.splitlines() if ": epoch " in line]
    assert [line.split(": epoch ")[1].split()[0] for line in epochs] == ["1/3", "3/3"], done.stderr
    quiet = subprocess.run(command[:3] + ["-q"] + command[3:], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and ": epoch " not in quiet.stderr


def test_strong_report_credits_members(tmp_path, capsys, digits_cnn):
    code, out, err = run_cli(capsys, "bench", "strong", "--n", "60", "--eps", "0.1", "--steps", "10",
                             "-p", "square.n_queries=300", "--out", str(tmp_path), "--no-probes")
    assert code == 0, err
    run_dir = next(tmp_path.iterdir())
    row = pd.read_csv(run_dir / "results.csv").iloc[0]
    counts = dict(item.split(":") for item in row["broken_by"].split(";"))
    assert set(counts) == {"apgd-ce", "apgd-t", "fab-t", "square"}
    flipped = round(row["success_rate"] * row["clean_accuracy"] * row["n"])
    assert sum(map(int, counts.values())) == flipped
    assert "Which attack broke each point" in (run_dir / "report.html").read_text()
