"""Workloads other than bench resume after SIGKILL: the rerun computes only the missing cells, and its numbers
equal an uninterrupted run's in a store that never saw the killed run."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from tests.helpers import kill_mid_run, run_script

FAKES_SCRIPT = """
import sys
from trustkit.detection.run import FakesConfig
from trustkit.engine import run_fakes
run_fakes(FakesConfig(dataset="digits", generators=["dcgan", "conv-vae"], n_train=200, n_val=50, n_test=100,
                      eps=[8 / 255, 0.25], perturbations=["jpeg-75"], out=sys.argv[1]))
"""
FAKES_CELLS = 3 * 2 + 2 * 1 * 2 + 2  # detectors × generators, evasion: generators × cnn × eps, realism per generator
FAKES_COLUMNS = ["kind", "detector", "train_generator", "test_generator", "condition", "eps", "auc", "ap",
                 "accuracy", "threshold"]


def _home_with_generators(trustkit_home, home):  # noqa: ANN001, ANN202 - the session's generators, nothing else
    (home / "checkpoints").mkdir(parents=True)
    for path in (trustkit_home / "checkpoints").glob("gen-*-digits*"):
        shutil.copy2(path, home / "checkpoints" / path.name)
    return home


@pytest.mark.slow  # ~1 min on 2 cores (CI's slow run); the bench and membership resume tests stay in the default run
def test_fakes_killed_mid_study_resumes_with_identical_results(tmp_path, digit_generators, trustkit_home):
    home = _home_with_generators(trustkit_home, tmp_path / "home")
    done = kill_mid_run(FAKES_SCRIPT, tmp_path / "killed", home, cells_before_kill=2, total=FAKES_CELLS)
    resumed = run_script(FAKES_SCRIPT, tmp_path / "resumed", home)
    info = json.loads((resumed / "run.json").read_text())
    assert info["cells"] == {"total": FAKES_CELLS, "computed": FAKES_CELLS - done, "from_cache": done, "failed": 0}
    fresh = run_script(FAKES_SCRIPT, tmp_path / "fresh-run", _home_with_generators(trustkit_home, tmp_path / "fresh"))
    pd.testing.assert_frame_equal(pd.read_csv(resumed / "results.csv")[FAKES_COLUMNS],
                                  pd.read_csv(fresh / "results.csv")[FAKES_COLUMNS])


AUDIT_SCRIPT = """
import sys
from trustkit.engine import run_audit
from trustkit.privacy.audit import AuditConfig
run_audit(AuditConfig(model="softmax", dataset="digits", n=16, whitebox_steps=150, inverse_steps=300,
                      prior_steps=60, reid_steps=200, mitigations=["noise:0.5", "quant:2"], membership_n=100,
                      mi_classes=3, mi_max_iter=50, out=sys.argv[1]))
"""
AUDIT_COLUMNS = ["kind", "layer", "attack", "mitigation", "utility_accuracy", "psnr", "ssim", "reid_top1",
                 "reid_top5"]


@pytest.mark.slow  # 1.5–2.5 min on 2 cores; the bench and membership resume tests cover the engine's resume
def test_privacy_audit_killed_mid_study_resumes_with_identical_results(tmp_path, monkeypatch):
    from trustkit.train.zoo import ensure_trained  # train first so the kill lands among the cells

    monkeypatch.setenv("TRUSTKIT_HOME", str(tmp_path / "home"))
    ensure_trained("softmax", "digits")
    cells = run_script(AUDIT_SCRIPT, tmp_path / "probe", tmp_path / "probe-home")  # how many cells a run has
    total = json.loads((cells / "run.json").read_text())["cells"]["total"]
    done = kill_mid_run(AUDIT_SCRIPT, tmp_path / "killed", tmp_path / "home", cells_before_kill=2, total=total)
    resumed = run_script(AUDIT_SCRIPT, tmp_path / "resumed", tmp_path / "home")
    info = json.loads((resumed / "run.json").read_text())
    assert info["cells"] == {"total": total, "computed": total - done, "from_cache": done, "failed": 0}
    for table, columns in (("results.csv", AUDIT_COLUMNS), ("layers.csv", ["layer", "risk", "best_psnr"]),
                           ("membership.csv", ["attack", "auc"])):
        pd.testing.assert_frame_equal(pd.read_csv(resumed / table)[columns], pd.read_csv(cells / table)[columns])


def test_audit_cache_keys_ignore_where_the_run_executes():
    """--jobs, --backend or --out do not change a cell's numbers, so they must not change its cache key."""
    from dataclasses import replace
    from types import SimpleNamespace

    import torch

    from trustkit.privacy.audit import AuditConfig
    from trustkit.studies.privacy_audit import InversionCell, PrivacyAuditStudy

    x, y = torch.rand(4, 1, 8, 8), torch.arange(4)
    state = SimpleNamespace(victims=(x, y), fingerprint="m", train_set=SimpleNamespace(tensors=lambda: (x, y)),
                            reid=SimpleNamespace(source="", test_accuracy=0.9))
    config = AuditConfig()
    keys = {PrivacyAuditStudy(c, ["relu1"], "relu1").key(InversionCell("relu1", "white-box"), state, "cpu")
            for c in (config, replace(config, jobs=2, backend="processes", out="elsewhere", use_cache=False))}
    assert len(keys) == 1
    changed = PrivacyAuditStudy(replace(config, whitebox_steps=7), ["relu1"], "relu1")
    assert changed.key(InversionCell("relu1", "white-box"), state, "cpu") not in keys
