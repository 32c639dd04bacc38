"""The bad-input battery: every mistake a user can make ends with one line on stderr that names the problem and
the fix, exit code 2, no traceback, and nothing new in the store or the reports folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import run_cli

RECURSIVE_ALIAS = "name: r\nmodels: &a [*a]\ndatasets: [digits]\nthreat_models: [{norm: linf, eps: [0.1]}]\n" \
                  "attacks: [fgsm]\n"
NESTED_ALIASES = "name: laughs\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nmodels: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
ANCHOR_ONLY = "name: anchor\nmodels: &m [cnn]\ndatasets: [digits]\nthreat_models: [{norm: linf, eps: [0.1]}]\n" \
              "attacks: [fgsm]\n"
TOO_MANY_CELLS = ("name: huge\nmodels: [softmax, mlp, cnn, resnet]\ndatasets: [digits]\nattacks: [fgsm, pgd, bim]\n"
                  "threat_models: [{norm: linf, eps: [" + ", ".join(f"{i / 1000:.3f}" for i in range(1, 901)) + "]}]\n")
UNKNOWN_KEY = "name: k\nmodels: [cnn]\ndatasets: [digits]\nthreat_models: [{norm: linf, eps: [0.1]}]\n" \
              "attacks: [fgsm]\nepsilon: 3\n"
SUITES = {"recursive.yaml": RECURSIVE_ALIAS, "laughs.yaml": NESTED_ALIASES, "anchor.yaml": ANCHOR_ONLY,
          "huge.yaml": TOO_MANY_CELLS, "unknown-key.yaml": UNKNOWN_KEY}

NO_CUDA = not torch.cuda.is_available()
BATTERY = [
    # names
    (["bench", "fgsm", "--model", "resnt"], "did you mean 'resnet'"),
    (["bench", "fgsn"], "did you mean 'fgsm'"),
    (["bench", "fgsm", "--dataset", "mnits"], "did you mean 'mnist'"),
    (["bench", "fgsm", "--defense", "jpge"], "jpeg"),
    (["bench", "art:NoSuchAttack"], "ART has no evasion attack"),
    (["bench", "art:__class__"], "ART has no evasion attack"),
    (["bench", "apgd-t", "--engine", "art"], "no ART equivalent"),
    (["list", "things"], "things"),
    (["train", "--model", "nosuch"], "unknown"),
    (["bench", "fgsm", "--targets", "sideways"], "sideways"),
    # threat models
    (["bench", "fgsm", "--eps", "-0.1"], "epsilon"),
    (["bench", "fgsm", "--eps", "1.5"], "exceeds 1"),
    (["bench", "fgsm", "--eps", "8/0"], "divides by zero"),
    (["bench", "fgsm", "--eps", "abc"], "cannot read epsilon"),
    (["bench", "fgsm", "--norm", "l7"], "l7"),
    (["bench", "cw"], "use --norm l2"),
    # run options
    (["bench", "fgsm", "--n", "0"], "--n must be at least 1"),
    (["bench", "fgsm", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["bench", "fgsm", "--jobs", "0"], "--jobs must be at least 1"),
    (["bench", "fgsm", "--max-cells", "0"], "--max-cells"),
    (["bench", "fgsm,pgd", "--eps", "0.1,0.2", "--max-cells", "3"], "expands to 4 cells"),
    (["bench", "fgsm", "--device", "cuda"] if NO_CUDA else ["bench", "fgsm", "--device", "tpu"], "device"),
    (["bench", "fgsm", "--device", "cpu:abc"], "cannot read device 'cpu:abc'"),
    (["bench", "fgsm", "--seed", "18446744073709551616"], "--seed"),
    (["bench", "fgsm", "--seed", "-1"], "--seed"),
    (["bench"], "name an attack"),
    # attack parameters: typed, finite, in range, known
    (["bench", "pgd", "--steps", "0"], "steps"),
    (["bench", "pgd", "-p", "steps=1.5"], "steps is an integer"),
    (["bench", "pgd", "-p", "steps=abc"], "steps is an integer"),
    (["bench", "cw", "--norm", "l2", "-p", "steps=abc"], "cw"),
    (["bench", "pgd", "--alpha", "nan"], "alpha must be a finite number"),
    (["bench", "pgd", "-p", "alpha=-1"], "alpha must be > 0"),
    (["bench", "pgd", "-p", "restarts=0"], "restarts must be >= 1"),
    (["bench", "pgd", "-p", "targeted=maybe"], "true or false"),
    (["bench", "square", "-p", "n_queries=1e12"], "n_queries must be >= 1 and <= 1e+06"),
    (["bench", "square", "-p", "n_queries=.inf"], "n_queries must be a finite number"),
    (["bench", "square", "-p", "p_init=2"], "p_init must be > 0 and <= 1"),
    (["bench", "hopskipjump", "-p", "max_eval=0"], "max_eval"),
    (["bench", "pgd", "-p", "bogus=1"], "no attack in this run takes parameter 'bogus'"),
    (["bench", "pgd", "-p", "steps"], "key=value"),
    (["bench", "bim", "--restarts", "3"], "no attack in this run takes parameter 'restarts'"),
    (["bench", "strong", "-p", "stpes=50"], "stpes"),
    (["bench", "strong", "-p", "square.stpes=5"], "stpes"),
    (["bench", "strong", "-p", "deepfool.steps=5"], "'deepfool.steps'"),
    (["bench", "apgd-ce", "-p", "targeted=true"], "targeted"),
    (["bench", "art:FastGradientMethod", "-p", "estimator=1"], "the model under attack"),
    # defenses
    (["bench", "pgd", "--defense", "noise:sigma=nan"], "sigma must be a finite number"),
    (["bench", "pgd", "--defense", "noise:sigma=-1"], "sigma must be > 0"),
    # suites (written to the test's folder)
    (["bench", "--suite", "{tmp}/recursive.yaml"], "line 2: YAML anchor '&a' is not allowed"),
    (["bench", "--suite", "{tmp}/laughs.yaml"], "line 2: YAML anchor '&a' is not allowed"),
    (["bench", "--suite", "{tmp}/anchor.yaml"], "line 2: YAML anchor '&m'"),
    (["bench", "--suite", "{tmp}/huge.yaml"], "expands to 10,800 cells"),
    (["bench", "--suite", "{tmp}/unknown-key.yaml"], "unknown key 'epsilon'"),
    (["bench", "--suite", "{tmp}/missing.yaml"], "not found"),
    (["bench", "--suite", "digits-quick", "--model", "cnn"], "--suite takes its models"),
    # files
    (["bench", "fgsm", "--model", "missing/model.safetensors"], "not found"),
    (["bench", "fgsm", "--model", "{tmp}/scripted.pt"], "--trust-code"),
    (["bench", "fgsm", "--model", "os.path:join"], "--trust-code"),
    (["bench", "fgsm", "--model", "{tmp}/pickled.pt"], "pickled PyTorch file"),
    (["bench", "fgsm", "--dataset", "olivetti", "--data-root", "{tmp}/pkz"], "it is a pickle"),
    (["bench", "fgsm", "--dataset", "cifar10", "--data-root", "{tmp}/empty-batches"], "cifar-10-batches-py"),
    (["bench", "fgsm", "--dataset", "cifar10", "--data-root", "{tmp}/bad-jpeg"], "0.jpg"),
    (["report", "compare", "{tmp}/no-such-run"], "not found"),
    # training
    (["train", "--model", "cnn", "--epochs", "0"], "--epochs must be at least 1"),
    (["train", "--model", "cnn", "--lr", "nan"], "--lr must be a finite number > 0"),
    (["train", "--model", "cnn", "--lr", "inf"], "--lr must be a finite number > 0"),
    # usage errors name the whole command whose --help explains them
    (["detect", "score", "{tmp}", "--detector", "x", "--out", "y"], "see 'trustkit detect score --help'"),
]


def _plant_files(tmp: Path) -> None:
    """The files some battery cases point at: code, a pickle, and broken data folders."""
    from trustkit.data.cifar10 import CLASS_NAMES

    torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))).save(str(tmp / "scripted.pt"))
    torch.save({"weights": torch.zeros(2)}, tmp / "pickled.pt")
    (tmp / "pkz" / "scikit_learn_data").mkdir(parents=True)
    (tmp / "pkz" / "scikit_learn_data" / "olivetti_py3.pkz").write_bytes(b"\x80\x04not really")  # never opened
    (tmp / "empty-batches" / "cifar-10-batches-py").mkdir(parents=True)
    for split in ("train", "test"):
        for name in CLASS_NAMES:
            (tmp / "bad-jpeg" / "cifar10-jpeg" / split / name).mkdir(parents=True)
            (tmp / "bad-jpeg" / "cifar10-jpeg" / split / name / "0.jpg").write_bytes(b"")


def _tree(root: Path) -> set[str]:
    """Everything under ``root`` but the lock files (bookkeeping of the store's writers, not content)."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.relative_to(root).parts[0] != "locks"} \
        if root.exists() else set()


@pytest.mark.parametrize("args, fragment", BATTERY, ids=[" ".join(a) for a, _ in BATTERY])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, trustkit_home, args, fragment):
    for name, text in SUITES.items():
        (tmp_path / name).write_text(text)
    _plant_files(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out_dir = tmp_path / "reports"
    extra = ["--out", str(out_dir)] if args[0] in ("bench", "report") and len(args) > 1 else []
    store_before = _tree(trustkit_home)
    code, out, err = run_cli(capsys, *args, *extra)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out_dir.exists() or not any(out_dir.iterdir())
    assert _tree(trustkit_home) == store_before


def test_the_battery_is_large():
    assert len(BATTERY) >= 50


def test_jobs_beyond_the_cores_are_capped_with_a_warning(tmp_path, capsys, digits_cnn):
    cores = os.cpu_count() or 1
    code, _, err = run_cli(capsys, "bench", "fgsm", "--eps", "0.1", "--n", "20", "--no-probes", "--jobs",
                           str(cores + 3), "--out", str(tmp_path))
    assert code == 0 and f"--jobs {cores + 3} is more than the {cores} CPU cores here; using --jobs {cores}" in err


def test_training_that_diverges_stops_with_a_line_and_writes_no_checkpoint(tmp_path, capsys):
    """A learning rate so large that the loss overflows: one line, exit 2, and no NaN model in the store that a
    later 'bench --model softmax' would pick up."""
    target = tmp_path / "diverged.safetensors"
    code, _, err = run_cli(capsys, "train", "--model", "softmax", "--epochs", "2", "--lr", "1e38", "--out", str(target))
    assert code == 2 and "training diverged" in err and len(err.strip().splitlines()) == 1, err
    assert not target.exists() and not any(p.suffix == ".safetensors" for p in tmp_path.rglob("*"))
