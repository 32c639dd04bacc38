"""The study engine: every backend gives the serial results, failures stay in their cell, a killed run or
worker loses nothing and counts nothing twice, and every run folder follows one run.json schema."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.engine_toy import ToyCurveStudy, ToyStudy
from tests.helpers import kill_mid_run, run_script
from trustkit.engine import CellCache, execute
from trustkit.errors import InvalidArgumentError

REPO = Path(__file__).resolve().parents[1]
SEEDS = list(range(8))


def _values(output) -> dict[int, float]:  # noqa: ANN001
    return {r.cell.seed: r.data["row"]["value"] for r in output.finished}


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray with 2 CPUs for the module (starting Ray costs seconds); workers import tests.engine_toy."""
    import ray

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), old]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def test_local_backend_runs_every_cell_and_the_cache_resumes(tmp_path):
    cache = CellCache(tmp_path / "cells")
    first = execute(ToyStudy(SEEDS), cache=cache)
    assert first.computed == len(SEEDS) and not first.failed
    again = execute(ToyStudy(SEEDS), cache=cache)
    assert again.computed == 0 and all(r.cached for r in again.records)
    assert _values(again) == _values(first)
    assert again.groups == {0: {"cells": 4}, 1: {"cells": 4}}


def test_a_failing_cell_is_reported_and_the_others_finish(tmp_path):
    output = execute(ToyStudy(SEEDS, fail=[3]), cache=CellCache(tmp_path / "cells"))
    assert [r.cell.seed for r in output.failed] == [3]
    assert output.failed[0].error == "ValueError: cell 3 is broken"  # one line
    assert sorted(_values(output)) == [s for s in SEEDS if s != 3]
    rerun = execute(ToyStudy(SEEDS), cache=CellCache(tmp_path / "cells"))
    assert rerun.computed == 1  # only the cell that failed is computed again


def test_without_a_terminal_the_engine_prints_progress_lines_with_an_eta(tmp_path, capsys, monkeypatch):
    """A log (nohup, CI) has no bar: cells are lines, at most one per interval, the first and the last always."""
    from trustkit.runtime import ProgressTask, set_quiet

    set_quiet(False)
    monkeypatch.setattr(ProgressTask, "LINE_INTERVAL", 0.0)  # every cell a line, so the count is exact
    execute(ToyStudy(SEEDS, fail=[3]), cache=CellCache(tmp_path / "cells"))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("toy: cell ")]
    assert len(lines) == len(SEEDS)
    assert "cell 1/8 done" in lines[0] and ", eta " in lines[0]
    assert any("failed: toy seed 3" in line for line in lines)
    assert "cell 8/8 done" in lines[-1] and "eta" not in lines[-1]


def test_processes_backend_matches_serial(tmp_path):
    serial = execute(ToyStudy(SEEDS), cache=CellCache(enabled=False))
    pooled = execute(ToyStudy(SEEDS, fail=[5]), backend="processes", jobs=2, cache=CellCache(enabled=False))
    assert {s: v for s, v in _values(serial).items() if s != 5} == _values(pooled)
    assert pooled.failed[0].error.startswith("ValueError: cell 5 is broken")
    assert len({r.data["row"]["pid"] for r in pooled.finished} - {os.getpid()}) >= 1  # ran elsewhere


def _computations(marker_dir: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for marker in marker_dir.glob("computed-*"):
        seed = int(marker.name.split("-")[1])
        counts[seed] = counts.get(seed, 0) + 1
    return counts


@pytest.mark.parametrize("backend", ["processes", "ray"])
def test_cells_that_build_on_each_other_run_once_in_one_process(backend, tmp_path, request):
    """A curve's cells (the study's affinity) travel as one task: no cell is computed twice, where cell by cell
    each worker would first recompute the smaller budgets it builds on."""
    if backend == "ray":
        request.getfixturevalue("ray_cluster")
    seeds = list(range(12))  # two groups: two curves of six cells
    serial_dir, chained_dir, loose_dir = (tmp_path / name for name in ("serial", "chained", "loose"))
    for folder in (serial_dir, chained_dir, loose_dir):
        folder.mkdir()
    serial = execute(ToyCurveStudy(seeds, marker_dir=str(serial_dir)), cache=CellCache(enabled=False))
    chained = execute(ToyCurveStudy(seeds, marker_dir=str(chained_dir)), backend=backend, jobs=2,
                      cache=CellCache(enabled=False))
    assert _values(chained) == _values(serial)
    assert _computations(chained_dir) == _computations(serial_dir) == {s: 1 for s in seeds}
    pids = {r.cell.group: set() for r in chained.finished}
    for record in chained.finished:
        pids[record.cell.group].add(record.data["row"]["pid"])
    assert all(len(p) == 1 for p in pids.values())  # each curve ran in one process
    # without the affinity the same study gives the same numbers at the cost the chains avoid: a Ray task starts
    # from the shipped group state, so each cell recomputes its whole curve below it (1 + 2 + ... + 6 per curve)
    loose = execute(ToyCurveStudy(seeds, marker_dir=str(loose_dir), chained=False), backend=backend, jobs=2,
                    cache=CellCache(enabled=False))
    assert _values(loose) == _values(serial)
    if backend == "ray":
        assert sum(_computations(loose_dir).values()) == 2 * sum(range(1, 7))


def test_unknown_backend_and_stray_address_are_one_line_errors():
    with pytest.raises(InvalidArgumentError, match="unknown backend 'spark'"):
        execute(ToyStudy(SEEDS), backend="spark")
    with pytest.raises(InvalidArgumentError, match="--ray-address needs --backend ray"):
        execute(ToyStudy(SEEDS), ray_address="auto")


def test_ray_backend_matches_serial_and_isolates_failures(ray_cluster, tmp_path):
    serial = execute(ToyStudy(SEEDS), cache=CellCache(enabled=False))
    remote = execute(ToyStudy(SEEDS, fail=[6]), backend="ray", jobs=2, cache=CellCache(tmp_path / "cells"))
    assert _values(remote) == {s: v for s, v in _values(serial).items() if s != 6}
    assert [r.cell.seed for r in remote.failed] == [6] and "cell 6 is broken" in remote.failed[0].error
    assert {r.data["row"]["pid"] for r in remote.finished}.isdisjoint({os.getpid()})
    assert ray_cluster.is_initialized()  # a cluster the engine did not start is left running


@pytest.mark.slow  # about 1.5 min: a Ray worker is killed and its cell retried (CI runs it with `pytest -m slow`)
def test_ray_worker_killed_mid_cell_is_retried_and_counted_once(ray_cluster, tmp_path):
    serial = execute(ToyStudy(SEEDS), cache=CellCache(enabled=False))
    study = ToyStudy(SEEDS, kill_once=[2, 5], marker_dir=str(tmp_path))
    output = execute(study, backend="ray", jobs=2, cache=CellCache(tmp_path / "cells"))
    assert (tmp_path / "killed-2").exists() and (tmp_path / "killed-5").exists()  # the workers did die
    assert not output.failed and _values(output) == _values(serial)
    assert output.computed == len(SEEDS) and len(list((tmp_path / "cells").rglob("*.json"))) == len(SEEDS)


def test_bench_on_ray_matches_serial(ray_cluster, tmp_path):
    from trustkit.engine import BenchConfig, run_bench

    base = dict(attacks=["fgsm", "pgd"], model="softmax", eps=[0.05, 0.1], n=40, probes=False, use_cache=False)
    serial = run_bench(BenchConfig(**base, out=str(tmp_path / "a")))
    remote = run_bench(BenchConfig(**base, out=str(tmp_path / "b"), backend="ray", jobs=2))
    columns = ["attack", "eps", "robust_accuracy", "success_rate", "mean_linf"]
    pd.testing.assert_frame_equal(serial.results[columns], remote.results[columns])
    assert remote.run_info["config"]["backend"] == "ray"


BENCH_SCRIPT = """
import sys
from trustkit.engine import BenchConfig, run_bench
run_bench(BenchConfig(attacks=["fgsm", "pgd", "bim", "mifgsm"], model="softmax", eps=[0.02, 0.05, 0.1, 0.2],
                      n=120, probes=False, out=sys.argv[1], attack_params={"steps": 40}))
"""


def test_bench_killed_at_any_moment_resumes_with_identical_results(tmp_path, monkeypatch):
    """SIGKILL a bench run once some cells are cached; the rerun computes only the rest, and its numbers equal
    an uninterrupted run's in a fresh store."""
    from trustkit.train.zoo import ensure_trained  # train first so the kill lands among the cells

    monkeypatch.setenv("TRUSTKIT_HOME", str(tmp_path / "home"))
    ensure_trained("softmax", "digits")
    done_before = kill_mid_run(BENCH_SCRIPT, tmp_path / "killed", tmp_path / "home", cells_before_kill=3, total=16)
    resumed_dir = run_script(BENCH_SCRIPT, tmp_path / "resumed", tmp_path / "home")
    info = json.loads((resumed_dir / "run.json").read_text())
    assert info["cells"]["from_cache"] == done_before and info["cells"]["computed"] == 16 - done_before
    fresh_dir = run_script(BENCH_SCRIPT, tmp_path / "fresh-run", tmp_path / "fresh")
    columns = ["attack", "eps", "robust_accuracy", "success_rate", "mean_linf", "mean_l2"]
    pd.testing.assert_frame_equal(pd.read_csv(resumed_dir / "results.csv")[columns],
                                  pd.read_csv(fresh_dir / "results.csv")[columns])


def test_run_folder_follows_the_schema_and_lists_failed_cells(tmp_path, monkeypatch):
    import trustkit.studies.bench_cells as cells_module
    from trustkit.engine import BenchConfig, run_bench
    from trustkit.rundir import REQUIRED_KEYS, RUN_SCHEMA_VERSION

    real = cells_module.evaluate_cell

    def flaky(ctx, cell, device, bar=None):  # noqa: ANN001
        if cell.attack.name == "pgd" and cell.eps == 0.1:
            raise RuntimeError("out of memory (simulated)")
        return real(ctx, cell, device, bar)

    monkeypatch.setattr("trustkit.studies.bench.evaluate_cell", flaky)
    result = run_bench(BenchConfig(attacks=["fgsm", "pgd"], model="softmax", eps=[0.05, 0.1], n=30,
                                   out=str(tmp_path), use_cache=False))
    info = json.loads((result.run_dir / "run.json").read_text())
    assert all(key in info for key in REQUIRED_KEYS) and info["schema_version"] == RUN_SCHEMA_VERSION
    assert info["cells"]["failed"] == 1 and info["failures"][0]["error"] == "RuntimeError: out of memory (simulated)"
    assert sorted(info["files"]) == sorted(p.name for p in result.run_dir.iterdir())
    assert len(result.results) == 3 and result.failed == 1
    assert "out of memory (simulated)" in result.report.read_text() and "Failed cells" in result.report.read_text()


def test_cli_exits_1_and_names_the_failed_cell(tmp_path, capsys, monkeypatch):
    from tests.helpers import run_cli
    import trustkit.studies.bench_cells as cells_module

    real = cells_module.evaluate_cell

    def flaky(ctx, cell, device, bar=None):  # noqa: ANN001
        if cell.attack.name == "pgd":
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(ctx, cell, device, bar)

    monkeypatch.setattr("trustkit.studies.bench.evaluate_cell", flaky)
    code, out, err = run_cli(capsys, "-q", "bench", "fgsm,pgd", "--model", "softmax", "--eps", "0.1", "-n", "20",
                             "--no-probes", "--no-cache", "--out", str(tmp_path))
    assert code == 1
    assert "failed: pgd linf eps 0.1 on softmax/digits: RuntimeError: CUDA out of memory (simulated)" in err
    assert "1 of 2 cells failed" in err and "report:" in out  # the report of the cells that finished is written


def test_a_temporary_left_by_a_kill_mid_write_is_removed_by_the_next_run(tmp_path):
    cache = CellCache(tmp_path / "cells")
    shard = tmp_path / "cells" / "ab"
    shard.mkdir(parents=True)
    dead = shard / ".abcdef.json.x1y2z3ab.tmp"  # as atomic_path names them; its writer was SIGKILLed
    dead.write_text("{half")
    os.utime(dead, (time.time() - 5, time.time() - 5))
    execute(ToyStudy(SEEDS[:2]), cache=cache)
    assert not dead.exists() and len(list((tmp_path / "cells").rglob("*.json"))) == 2
