"""LiRA and RMIA with shadow models: the scores against hand-computed cases and scipy, the honest low-FPR
report, and the membership study on digits (cells, resume after SIGKILL, incremental shadow models, CLI)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm

from tests.helpers import kill_mid_run, run_cli, run_script


def test_scaled_logit_is_the_log_odds_of_the_true_label_and_stays_finite_when_p_rounds_to_one():
    from trustkit.privacy.lira import scaled_logit

    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [1.0, 3.0, 0.0]])
    labels = torch.tensor([0, 2, 1])
    p = torch.softmax(logits.double(), 1)[torch.arange(3), labels].numpy()
    np.testing.assert_allclose(scaled_logit(logits, labels), np.log(p / (1 - p)), rtol=1e-12)
    huge = scaled_logit(torch.tensor([[60.0, 0.0, 0.0]]), torch.tensor([0]))
    assert math.isfinite(huge[0]) and huge[0] == pytest.approx(60.0 - math.log(2.0), abs=1e-9)


def test_online_lira_matches_the_hand_computed_likelihood_ratio():
    """One image, four shadows: IN φ = 1, 3 (mean 2), OUT φ = −1, 1 (mean 0); the pooled variances are
    ((1−2)² + (3−2)²)/1 = 2 and ((−1)² + 1²)/1 = 2. At φ_target = 2 the log ratio is (2−0)²/(2·2) − 0 = 1."""
    from trustkit.privacy.lira import lira_online

    shadows = np.array([[1.0], [3.0], [-1.0], [1.0]])  # K × N
    member_of = np.array([[True], [True], [False], [False]])
    score = lira_online(np.array([2.0]), shadows, member_of, variance="global")
    assert score[0] == pytest.approx(1.0, abs=1e-12)
    # a target φ at the OUT mean: −(0−2)²/4 + 0 = −1
    assert lira_online(np.array([0.0]), shadows, member_of, variance="global")[0] == pytest.approx(-1.0, abs=1e-12)


def test_lira_per_example_and_offline_scores_match_scipy_fits_image_by_image():
    from trustkit.privacy.lira import lira_offline, lira_online

    rng = np.random.default_rng(0)
    k, n, q = 12, 30, 2
    member_of = rng.random((k, n)) < 0.5
    member_of[0], member_of[1] = True, False  # every image has IN and OUT shadows
    shadows = rng.normal(size=(k, n, q)) + 2.0 * member_of[:, :, None]
    target = rng.normal(size=(n, q)) + 1.0
    online = lira_online(target, shadows, member_of, variance="per-example")
    offline = lira_offline(target, shadows, member_of, variance="per-example")
    for i in range(n):
        ins, outs = shadows[member_of[:, i], i], shadows[~member_of[:, i], i]
        expected_online, expected_offline = [], []
        for view in range(q):
            mu_in, sd_in = ins[:, view].mean(), ins[:, view].std(ddof=1) if len(ins) > 1 else None
            mu_out, sd_out = outs[:, view].mean(), outs[:, view].std(ddof=1)
            if sd_in is None:
                continue
            expected_online.append(norm.logpdf(target[i, view], mu_in, sd_in)
                                   - norm.logpdf(target[i, view], mu_out, sd_out))
            expected_offline.append(-norm.logsf(target[i, view], mu_out, sd_out))
        if len(expected_online) == q:
            assert online[i] == pytest.approx(np.mean(expected_online), rel=1e-9)
        if len(outs) > 1:
            assert offline[i] == pytest.approx(np.mean(expected_offline), rel=1e-9)


def test_lira_separates_members_it_was_built_to_find_and_refuses_bad_shapes():
    from trustkit.errors import InvalidArgumentError
    from trustkit.privacy.lira import lira_online

    rng = np.random.default_rng(1)
    k, n = 16, 400
    member_of = rng.random((k, n)) < 0.5
    difficulty = rng.normal(size=n) * 3  # per-image offsets a global threshold cannot remove
    shadows = difficulty[None] + rng.normal(size=(k, n)) * 0.5 + 1.0 * member_of
    target_member = rng.random(n) < 0.5
    target = difficulty + rng.normal(size=n) * 0.5 + 1.0 * target_member
    from sklearn.metrics import roc_auc_score

    lira = roc_auc_score(target_member, lira_online(target, shadows, member_of))
    threshold = roc_auc_score(target_member, target)
    assert lira > 0.8 > threshold  # calibration per image is the whole point of LiRA
    with pytest.raises(InvalidArgumentError, match="LiRA needs"):
        lira_online(target[:5], shadows, member_of)


def test_rmia_matches_the_hand_computed_pairwise_test():
    """One reference model. Candidates: Pr(x|θ) = 0.9, 0.2 with Pr(x) = 0.3, 0.4 -> ratios 3 and 0.5.
    Population: Pr(z|θ) = 0.5, 0.5, 0.5 with Pr(z) = 0.25, 0.5, 1.0 -> ratios 2, 1, 0.5.
    Candidate 1 dominates all three (3/2, 3/1, 3/0.5 ≥ 1), candidate 2 only the last (0.5/0.5 = 1)."""
    from trustkit.privacy.rmia import rmia_scores

    scores = rmia_scores(np.array([0.9, 0.2]), np.array([[0.3, 0.4]]), np.array([0.5, 0.5, 0.5]),
                         np.array([[0.25, 0.5, 1.0]]))
    np.testing.assert_allclose(scores, [1.0, 1 / 3])
    # γ = 2 asks for twice the ratio: candidate 1 then dominates z with ratio ≤ 1.5 (two of three)
    np.testing.assert_allclose(rmia_scores(np.array([0.9, 0.2]), np.array([[0.3, 0.4]]), np.array([0.5, 0.5, 0.5]),
                                           np.array([[0.25, 0.5, 1.0]]), gamma=2.0), [2 / 3, 0.0])


def test_low_fpr_points_are_reported_only_where_the_non_members_resolve_them():
    from trustkit.privacy.membership import low_fpr_summary

    rng = np.random.default_rng(2)
    members, non_members = rng.normal(1, 1, 500), rng.normal(0, 1, 500)
    few = low_fpr_summary(members, non_members)
    assert math.isnan(few["tpr_at_0_1pct_fpr"]) and not math.isnan(few["tpr_at_1pct_fpr"])
    assert few["tpr_at_0_fp"] == pytest.approx(float((members > non_members.max()).mean()))
    enough = low_fpr_summary(members, rng.normal(0, 1, 1000))
    assert not math.isnan(enough["tpr_at_0_1pct_fpr"]) and enough["non_members"] == 1000


def test_member_halves_depend_only_on_seed_and_model_index():
    from trustkit.studies.membership import member_row

    a, b = member_row(100, 0, 3), member_row(100, 0, 3)
    assert (a == b).all() and a.sum() == 50
    assert (member_row(100, 0, 4) != a).any() and (member_row(100, 1, 3) != a).any()


SMALL = dict(model="softmax", dataset="digits", pool=200, population=100, epochs=15, queries=2)


def test_membership_study_on_digits_scores_every_attack_from_its_shadow_models(tmp_path):
    from trustkit.engine import run
    from trustkit.studies.membership import MembershipConfig, membership_study

    config = MembershipConfig(**SMALL, shadow_models=4, seed=11, out=str(tmp_path))
    result = run(membership_study(config), out=tmp_path)
    results, scores, models = (result.tables[n] for n in ("results.csv", "scores.csv", "models.csv"))
    assert list(results["attack"]) == ["lira", "lira-offline", "rmia", "loss"]
    assert (results["members"] == 100).all() and (results["non_members"] == 100).all()
    assert results["auc"].between(0, 1).all() and results["tpr_at_0_1pct_fpr"].isna().all()
    assert list(models["role"]) == ["target"] + ["shadow"] * 4 and (models["train_size"] == 100).all()
    assert len(scores) == 200 and scores["member"].sum() == 100
    # the loss column is the target's −cross-entropy on the plain image, recomputed here from its φ
    assert scores["score_loss"].max() <= 0
    html = (result.report).read_text()
    assert "ROC on log-log axes" in html and "lira-offline" in html and "TPR @ 0 false positives" in html
    names = [c.name for c in result.checks]
    assert "low-FPR resolution" in names and any(c.status == "flag" for c in result.checks
                                                 if c.name == "low-FPR resolution")


def test_more_shadow_models_reuse_the_ones_already_trained(tmp_path):
    from trustkit.engine import run
    from trustkit.studies.membership import MembershipConfig, membership_study

    first = run(membership_study(MembershipConfig(**SMALL, shadow_models=2, seed=12, attacks=("lira", "loss"))),
                out=tmp_path)
    assert first.output.computed == 3
    more = run(membership_study(MembershipConfig(**SMALL, shadow_models=3, seed=12, attacks=("lira", "loss"))),
               out=tmp_path)
    assert more.output.computed == 1 and more.tables["results.csv"]["shadow_models"].iloc[0] == 3


MEMBERSHIP_SCRIPT = """
import sys
from trustkit.engine import run
from trustkit.studies.membership import MembershipConfig, membership_study
run(membership_study(MembershipConfig(model="softmax", dataset="digits", pool=200, population=100, epochs=40,
                                      shadow_models=5, seed=13)), out=sys.argv[1])
"""


def test_shadow_cells_resume_after_a_kill_with_identical_results(tmp_path):
    total = 6
    done = kill_mid_run(MEMBERSHIP_SCRIPT, tmp_path / "killed", tmp_path / "home", cells_before_kill=2, total=total)
    resumed = run_script(MEMBERSHIP_SCRIPT, tmp_path / "resumed", tmp_path / "home")
    info = json.loads((resumed / "run.json").read_text())
    assert info["cells"] == {"total": total, "computed": total - done, "from_cache": done, "failed": 0}
    fresh = run_script(MEMBERSHIP_SCRIPT, tmp_path / "fresh-run", tmp_path / "fresh")
    columns = ["attack", "auc", "tpr_at_1pct_fpr", "tpr_at_0_fp"]
    pd.testing.assert_frame_equal(pd.read_csv(resumed / "results.csv")[columns],
                                  pd.read_csv(fresh / "results.csv")[columns])


def test_membership_cli_runs_and_refuses_bad_requests_in_one_line(tmp_path, capsys):
    code, out, err = run_cli(capsys, "privacy", "membership", "-m", "softmax", "--pool", "120", "--population", "50",
                             "--epochs", "5", "-k", "2", "-a", "lira,loss", "--seed", "14", "--out", str(tmp_path))
    assert code == 0, err
    assert "lira" in out and "n/r" in out and "report:" in out
    for args, message in ((["-m", "cnn-digits"], "zoo architecture"), (["-a", "shokri"], "unknown membership attack"),
                          (["-k", "1", "-a", "lira"], "at least 2 shadow"), (["--queries", "9"], "--queries")):
        code, out, err = run_cli(capsys, "privacy", "membership", *args, "--out", str(tmp_path / "bad"))
        assert code == 2, (args, out, err)
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()


def test_privacy_audit_with_shadow_models_adds_the_lira_section_to_its_report(tmp_path):
    from trustkit.engine import run_audit
    from trustkit.privacy.audit import AuditConfig

    config = AuditConfig(model="softmax", dataset="digits", attacks=["white-box"], n=8, whitebox_steps=30,
                         mitigations=[], membership_n=100, mi_classes=2, mi_max_iter=20, reid_steps=100,
                         shadow_models=2, seed=15, out=str(tmp_path))
    result = run_audit(config)
    assert {"layers.csv", "membership.csv", "membership_results.csv", "membership_models.csv"} <= set(result.tables)
    assert list(result.tables["membership_results.csv"]["attack"]) == ["lira", "lira-offline", "rmia", "loss"]
    html = result.report.read_text()
    assert "1. Privacy audit" in html and "Membership inference with shadow models" in html
    assert html.count('<h2 id="run">Run</h2>') == 0 or html.count(">Run</h2>") == 1
    assert any(c.name.endswith("shadow models") and c.status == "flag" for c in result.checks)  # 2 < 8: weak
