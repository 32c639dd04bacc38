"""Suites from YAML: strict validation, cell cache and resume, --jobs, compare leaderboard."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from trustkit.engine import run_suite
from trustkit.studies.suite import available_suites, load_suite, parse_suite
from trustkit.cli import run
from trustkit.errors import UnknownNameError
from trustkit.yamlspec import SpecError

TINY = """\
name: tiny
description: two models, two attacks, two budgets
seed: 0
n: 40
models: [softmax, cnn]
datasets: [digits]
threat_models:
  - norm: linf
    eps: [0.1, 0.2]
attacks:
  - fgsm
  - name: pgd
    params: {steps: 5}
"""
NUMBERS = ["model", "attack", "eps", "clean_accuracy", "robust_accuracy", "success_rate", "mean_linf", "mean_l2"]


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_suites_are_valid():
    suites = available_suites()
    assert {"digits-quick", "mnist-linf", "cifar10-linf"} <= set(suites)
    for name in suites:
        suite = load_suite(name)
        assert suite.cells() and suite.name == name


@pytest.mark.parametrize("text, fragment", [
    (TINY.replace("models:", "modles:"), "line 5: unknown key 'modles' in the suite (did you mean 'models'?)"),
    (TINY.replace("params: {steps: 5}", "params: {stpes: 5}"), "line 13: attack 'pgd' takes no parameter stpes"),
    (TINY.replace("[softmax, cnn]", "[softmax, cnnn]"), "line 5: unknown model 'cnnn' (did you mean 'cnn'?)"),
    (TINY.replace("[softmax, cnn]", "[my.pkg:factory]"), "line 5: unknown model"),
    (TINY.replace("[0.1, 0.2]", "[0.1, 2]"), "line 9: linf epsilon 2.0 exceeds 1"),
    (TINY.replace("norm: linf", "norm: l1"), "unknown norm 'l1'"),
    (TINY.replace("  - fgsm", "  - fgsmm"), "line 11: unknown attack 'fgsmm'"),
    (TINY.replace("n: 40", "n: 0"), "line 4: 'n' must be an integer >= 1"),
    (TINY.replace("datasets: [digits]", "datasets: [digits"), "malformed YAML"),
    (TINY.replace("name: tiny\n", ""), "needs the key 'name'"),
    ("", "is empty"),
    ("- a\n- b\n", "must be a mapping"),
])
def test_validation_names_the_problem_and_line(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_suite(str(path))
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_unknown_suite_name_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'digits-quick'"):
        load_suite("digits-quik")


def test_cells_are_the_cross_product():
    suite = parse_suite(TINY, "tiny.yaml")
    cells = suite.cells()
    assert len(cells) == 2 * 2 * 2
    assert {(c.model, c.attack.name, c.eps) for c in cells} == {
        (m, a, e) for m in ("softmax", "cnn") for a in ("fgsm", "pgd") for e in (0.1, 0.2)}
    assert all(c.suite == "tiny" and c.n == 40 for c in cells)


def test_suite_run_caches_cells_and_rerun_is_identical(tmp_path, digits_cnn, digits_softmax):
    path = write(tmp_path, TINY)
    first = run_suite(str(path), out=str(tmp_path / "r"))
    assert first.run_info["cells"]["total"] == 8  # some cells may come from other tests' identical cells
    second = run_suite(str(path), out=str(tmp_path / "r"))
    assert second.run_info["cells"] == {"total": 8, "computed": 0, "from_cache": 8, "failed": 0}
    pd.testing.assert_frame_equal(first.results[NUMBERS], second.results[NUMBERS])
    assert set(first.results["suite"]) == set(second.results["suite"]) == {"tiny"}
    html = second.report.read_text()
    assert "Leaderboard" in html and "8 reused from the cell cache" in html


def test_parallel_jobs_give_the_serial_results(tmp_path, digits_cnn, digits_softmax):
    path = write(tmp_path, TINY)
    serial = run_suite(str(path), out=str(tmp_path / "s"), use_cache=False)
    parallel = run_suite(str(path), out=str(tmp_path / "p"), use_cache=False, jobs=2)
    pd.testing.assert_frame_equal(serial.results[NUMBERS], parallel.results[NUMBERS])


def test_killed_suite_resumes_to_identical_results(tmp_path, trustkit_home, digits_cnn, digits_softmax):
    """Kill the CLI mid-suite (SIGKILL, no clean-up), re-run: the finished suite equals an uninterrupted one."""
    path = write(tmp_path, TINY.replace("steps: 5", "steps: 30"))
    home = tmp_path / "home"
    (home / "checkpoints").mkdir(parents=True)
    for f in (trustkit_home / "checkpoints").iterdir():  # same trained models, fresh cell cache
        (home / "checkpoints" / f.name).write_bytes(f.read_bytes())
    env = {**os.environ, "TRUSTKIT_HOME": str(home)}
    command = [sys.executable, "-m", "trustkit", "-q", "bench", "--suite", str(path), "--out", str(tmp_path / "k")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cells = home / "cells"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(cells.rglob("*.json"))) < 3 and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(list(cells.rglob("*.json")))
    assert not (tmp_path / "k").exists() or not [p for p in (tmp_path / "k").iterdir() if not p.name.startswith(".")]
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    run_dir = next(p for p in (tmp_path / "k").iterdir() if not p.name.startswith("."))
    info = json.loads((run_dir / "run.json").read_text())
    assert info["cells"]["from_cache"] >= min(done_before, 8) - 2  # probes share the cache folder
    reference = run_suite(str(path), out=str(tmp_path / "ref"), use_cache=False)
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "results.csv")[NUMBERS], reference.results[NUMBERS])
    assert not list(tmp_path.rglob("*.tmp"))


def test_compare_builds_a_sorted_leaderboard_with_flags(tmp_path, capsys, digits_cnn, digits_softmax):
    path = write(tmp_path, TINY)
    first = run_suite(str(path), out=str(tmp_path / "r"))
    assert run(["report", "compare", str(first.run_dir), "--out", str(tmp_path / "c")]) == 0
    folder = next((tmp_path / "c").iterdir())
    board = pd.read_csv(folder / "leaderboard.csv")
    assert len(board) == 2 * 2  # models x eps (worst case over the two attacks)
    for _, group in board.groupby("eps"):
        assert list(group["robust_accuracy"]) == sorted(group["robust_accuracy"], reverse=True)
        assert list(group["rank"]) == sorted(group["rank"])
    worst = first.results.groupby(["model", "eps"])["robust_accuracy"].min()
    for row in board.itertuples():
        assert row.robust_accuracy == pytest.approx(worst[(row.model, row.eps)])
    html = (folder / "report.html").read_text()
    assert "Leaderboard" in html and "worst-case robust accuracy" in html


@pytest.mark.parametrize("args, fragment", [
    (["bench", "--suite", "nope"], "unknown suite 'nope'"),
    (["bench", "--suite", "digits-quick", "fgsm"], "--suite takes its models"),
    (["bench", "--suite", "digits-quick", "--model", "cnn"], "drop --model"),
    (["bench", "--suite", "missing/file.yaml"], "not found"),
    (["report", "compare", "/nonexistent/run"], "not found"),
])
def test_suite_bad_input_one_line_exit_2(tmp_path, capsys, args, fragment):
    assert run(args + ["--out", str(tmp_path / "o")] if args[0] == "bench" else args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err and err.startswith("error: ")


def test_malformed_suite_file_via_cli(tmp_path, capsys):
    path = write(tmp_path, TINY.replace("datasets: [digits]", "datasets: [digits"))
    assert run(["bench", "--suite", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "malformed YAML" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_list_suites(capsys):
    assert run(["list", "suites"]) == 0
    assert "digits-quick" in capsys.readouterr().out


def test_shipped_suites_are_found_from_any_folder(tmp_path, monkeypatch):
    """A user's shell is rarely in the repository: the shipped suites come with the package, and
    configs/suites of the repository is the same folder."""
    import trustkit

    monkeypatch.chdir(tmp_path)
    suites = available_suites()
    assert {"digits-quick", "mnist-linf", "cifar10-linf"} <= set(suites)
    assert all(path.parent == Path(trustkit.__file__).parent / "suites" for path in suites.values())
    repo_configs = Path(trustkit.__file__).parent.parent / "configs" / "suites"
    if repo_configs.exists():  # a checkout (not an installed wheel)
        assert repo_configs.resolve() == (Path(trustkit.__file__).parent / "suites").resolve()
    (tmp_path / "configs" / "suites").mkdir(parents=True)  # a user's own suites in ./configs/suites come first
    (tmp_path / "configs" / "suites" / "digits-quick.yaml").write_text((suites["digits-quick"]).read_text())
    assert available_suites()["digits-quick"].parent == tmp_path / "configs" / "suites"
