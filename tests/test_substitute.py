"""Substitute-model attack (Papernot et al. 2017): label-only oracle, queries counted exactly, agreement above
chance, seeds held out, CLI end to end and one-line errors."""
import json

import pandas as pd
import pytest
import torch

from tests.helpers import run_cli
from trustkit import load_dataset
from trustkit.attacks.queries import QueryCounter
from trustkit.blackbox.queries import LabelOracle
from trustkit.blackbox.substitute import (
    SubstituteConfig,
    evaluation_indices,
    jacobian_augmentation,
    seed_indices,
    train_substitute,
)
from trustkit.data import get_spec

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


def _train(target, config):
    test = load_dataset("digits", "test")
    seeds_index = seed_indices(test.labels, config.seed_size, 10, 0)
    eval_index = evaluation_indices(len(test), seeds_index, 200, 360, 0)
    seeds, _ = test.tensors(seeds_index)
    x, y = test.tensors(eval_index)
    with torch.no_grad():
        target_labels = target(x).argmax(1)
    counter = QueryCounter(target)
    oracle = LabelOracle(counter, CPU)
    trained = train_substitute(oracle, seeds, get_spec("digits"), config, device=CPU, eval_x=x,
                               eval_target=target_labels, eval_y=y)
    return trained, counter


def test_queries_counted_exactly_and_substitute_agrees_with_the_target(digits_cnn):
    config = SubstituteConfig(target="cnn", substitute="mlp", seed_size=30, rho=3, epochs=8)
    trained, counter = _train(digits_cnn, config)
    assert trained.queries == counter.rows == 30 * 2 ** 3 == config.planned_queries()
    assert len(trained.x) == len(trained.y) == 240
    assert [h["queries"] for h in trained.history] == [30, 60, 120, 240]
    # the oracle's labels are the target's argmax, and the substitute learns them far beyond chance (10%)
    with torch.no_grad():
        assert torch.equal(trained.y, digits_cnn(trained.x).argmax(1))
    assert trained.history[-1]["agreement"] > 0.5
    assert trained.history[-1]["agreement"] > trained.history[0]["agreement"] - 0.05
    assert 0 <= trained.x.min() and trained.x.max() <= 1


def test_reservoir_sampling_and_budget_cut_the_queries(digits_softmax):
    config = SubstituteConfig(target="softmax", substitute="softmax", seed_size=20, rho=4, epochs=2, reservoir=15,
                              reservoir_after=2)
    trained, counter = _train(digits_softmax, config)
    assert trained.queries == counter.rows == 20 * 2 ** 2 + 15 * (4 - 2) == config.planned_queries()
    budget = SubstituteConfig(target="softmax", substitute="softmax", seed_size=20, rho=4, epochs=2, max_queries=50)
    trained, counter = _train(digits_softmax, budget)
    assert trained.queries == counter.rows == 50 == budget.planned_queries()


def test_periodic_step_size_and_jacobian_augmentation(digits_softmax):
    config = SubstituteConfig(target="x", lam=0.1, tau=3)
    assert [config.step(r) for r in range(7)] == [0.1, 0.1, 0.1, -0.1, -0.1, -0.1, 0.1]
    assert SubstituteConfig(target="x", tau=None).step(5) == 0.1
    x, y = load_dataset("digits", "test").tensors(torch.arange(20))
    moved = jacobian_augmentation(digits_softmax, x, y, 0.1, batch_size=8, device=CPU)
    step = (moved - x).abs()
    assert bool(((step < 1e-6) | ((step - 0.1).abs() < 1e-6) | (moved == 0) | (moved == 1)).all())
    assert step.max() > 0.09  # the points moved


def test_seeds_are_balanced_and_held_out_of_the_evaluation():
    labels = load_dataset("digits", "test").labels
    seeds = seed_indices(labels, 25, 10, seed=3)
    counts = torch.bincount(labels[seeds], minlength=10)
    assert len(seeds) == 25 and counts.max() - counts.min() <= 1
    evaluation = evaluation_indices(len(labels), seeds, None, 360, seed=3)
    assert len(evaluation) == 360 - 25 and not set(seeds.tolist()) & set(evaluation.tolist())


def test_cli_end_to_end(tmp_path, capsys, digits_cnn):
    code, out, err = run_cli(capsys, "-q", "bench", "substitute", "--target", "cnn", "--substitute", "mlp",
                             "--seed-size", "30", "--rho", "2", "--epochs", "5", "--n", "80", "--eps", "0.1,0.3",
                             "--attack", "fgsm", "--out", str(tmp_path))
    assert code == 0, err
    run_dir = next(tmp_path.iterdir())
    assert f"report: {run_dir / 'report.html'}" in out and "120 label queries" in out
    assert {p.name for p in run_dir.iterdir()} == {"report.html", "results.csv", "history.csv", "run.json"}
    results = pd.read_csv(run_dir / "results.csv")
    assert list(results["eps"]) == [0.1, 0.3] and results["queries"].eq(120).all() and results["n"].eq(80).all()
    assert results["agreement"].gt(0.3).all()
    assert results["success_rate"].iloc[1] >= results["success_rate"].iloc[0]
    assert (results["white_box_success_rate"] >= results["success_rate"] - 1 / 80).all()
    assert not results["beats_white_box"].any()
    assert len(pd.read_csv(run_dir / "history.csv")) == 3
    info = json.loads((run_dir / "run.json").read_text())
    assert info["queries"] == 120 and info["seed_images"] == 30 and info["config"]["planned_queries"] == 120
    html = (run_dir / "report.html").read_text()
    assert "Substitute training" in html and "Transfer from the substitute" in html
    assert html.count("data:image/png;base64,") == 2


@pytest.mark.parametrize("args, message", [
    (["--target", "cnnn"], "did you mean 'cnn'"),
    (["--target", "cnn", "--substitute", "resnt"], "did you mean 'resnet'"),
    (["--target", "cnn", "--queries", "10"], "cannot even label"),
    (["--target", "cnn", "--rho", "-1"], "--rho"),
    (["--target", "cnn", "--seed-size", "0"], "--seed-size must be at least 1"),
    (["--target", "cnn", "--lambda", "0"], "--lambda"),
    (["--target", "cnn", "--eps", "-1"], "epsilon"),
    ([], "--target"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    code, out, err = run_cli(capsys, "bench", "substitute", *args, "--out", str(tmp_path))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_substitute_beating_white_box_is_flagged():
    from trustkit.blackbox.substitute import beats_white_box, substitute_checks as _check

    rows = pd.DataFrame([
        {"attack": "fgsm", "norm": "linf", "eps": 0.3, "success_rate": 0.40, "white_box_success_rate": 0.30,
         "target_clean_accuracy": 1.0, "n": 100},
        {"attack": "pgd", "norm": "linf", "eps": 0.3, "success_rate": 0.45, "white_box_success_rate": 0.90,
         "target_clean_accuracy": 1.0, "n": 100},
    ])
    [check] = _check(rows)
    assert check.status == "pass"  # judged against the strongest white-box attack at that eps (pgd, 90%)
    rows.loc[1, "white_box_success_rate"] = 0.35
    [check] = _check(rows)
    assert check.status == "flag" and "fgsm eps 0.3" in check.detail and "pgd eps 0.3" in check.detail
    assert beats_white_box(rows).tolist() == [True, True]
