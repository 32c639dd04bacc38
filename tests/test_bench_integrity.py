"""Bench traps that once served wrong numbers silently: targeted attacks given the true labels, parameters that
left no trace in results.csv, cache keys that missed the model bytes, the data actually used or a default."""
from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.helpers import run_cli
from trustkit.attacks.evaluate import Predictions, choose_targets
from trustkit.engine import BenchConfig, run_bench
from trustkit.data.cifar10 import CLASS_NAMES


def test_targets_are_never_the_true_label_and_are_seeded():
    y = torch.arange(10).repeat(30)
    logits = torch.randn(300, 10, generator=torch.Generator().manual_seed(0))
    clean = Predictions.from_logits(logits)
    for policy in ("random", "least-likely"):
        targets = choose_targets(policy, clean, y, 10, seed=3)
        assert not bool((targets == y).any())
        assert torch.equal(targets, choose_targets(policy, clean, y, 10, seed=3))
    random_targets = choose_targets("random", clean, y, 10, seed=3)
    assert len(set(random_targets.tolist())) == 10 and not torch.equal(random_targets, choose_targets(
        "random", clean, y, 10, seed=4))
    least = choose_targets("least-likely", clean, y, 10, seed=0)
    expected = logits.argmin(1)
    assert torch.equal(least[expected != y], expected[expected != y])


@pytest.mark.parametrize("policy", ["random", "least-likely"])
def test_targeted_bench_attacks_real_targets(tmp_path, digits_cnn, policy):
    """With the true labels as 'targets', a targeted PGD pushed images towards their own class: robust accuracy
    1.0 where the untargeted attack gives ~0. Real targets break most images at a large budget."""
    config = BenchConfig(attacks=["pgd"], model="cnn", eps=[0.5], out=str(tmp_path), probes=False, n=120,
                         strict_params={"targeted": True, "steps": 20}, targets=policy)
    row = run_bench(config).results.iloc[0]
    assert row["targets"] == policy
    assert row["robust_accuracy"] < 0.3 and row["success_rate"] > 0.5  # success: the target label was reached
    written = pd.read_csv(next(tmp_path.glob("*/results.csv")))
    assert written["targets"].iloc[0] == policy


def test_results_carry_each_attacks_resolved_parameters(tmp_path, digits_cnn):
    rows = {}
    for steps in (10, 50):
        config = BenchConfig(attacks=["pgd"], model="cnn", eps=[0.1], out=str(tmp_path / str(steps)), probes=False,
                             n=40, attack_params={"steps": steps})
        result = run_bench(config)
        rows[steps] = json.loads(pd.read_csv(result.run_dir / "results.csv")["attack_params"].iloc[0])
        assert f"&quot;steps&quot;:{steps}" in result.report.read_text() or f'"steps":{steps}' in \
            result.report.read_text().replace("&#34;", '"')
    assert rows[10]["steps"] == 10 and rows[50]["steps"] == 50
    assert rows[10]["alpha"] == pytest.approx(2.5 * 0.1 / 10) and rows[50]["restarts"] == 1  # defaults resolved


def test_bim_refuses_restarts_instead_of_ignoring_them(capsys):
    code, _, err = run_cli(capsys, "bench", "bim", "--restarts", "5", "--no-probes")
    assert code == 2 and "restarts" in err and len(err.strip().splitlines()) == 1


# --- complete cache keys ----------------------------------------------------------------------------------

FACTORY = textwrap.dedent('''
    import os, torch
    from safetensors.torch import load_file

    def build():
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
        model.load_state_dict(load_file(os.environ["TK_TEST_WEIGHTS"]))
        return model
''')


def _jpeg_tree(root, seed: int, per_class: int = 2) -> None:
    generator = np.random.default_rng(seed)
    for name in CLASS_NAMES:
        folder = root / "cifar10-jpeg" / "test" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(generator.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")


@pytest.fixture
def factory_model(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    (tmp_path / "tk_cache_factory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    weights = tmp_path / "weights.safetensors"
    monkeypatch.setenv("TK_TEST_WEIGHTS", str(weights))

    def retrain(seed: int) -> None:
        torch.manual_seed(seed)
        layer = torch.nn.Linear(3 * 32 * 32, 10)
        save_file({"1.weight": layer.weight.detach().contiguous(), "1.bias": layer.bias.detach().contiguous()},
                  str(weights))

    retrain(0)
    yield retrain
    sys.modules.pop("tk_cache_factory", None)


def _computed(tmp_path, data_root, **overrides) -> int:
    config = BenchConfig(attacks=["square"], model="tk_cache_factory:build", dataset="cifar10", eps=[8 / 255],
                         out=str(tmp_path / "reports"), probes=False, data_root=str(data_root),
                         strict_params={"n_queries": 20}, **overrides)
    from trustkit.engine import execute
    from trustkit.studies.bench import bench_study

    config.trust_code = True
    return execute(bench_study(config)).computed


def test_cache_recomputes_when_factory_weights_data_or_a_default_change(tmp_path, factory_model, monkeypatch):
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    _jpeg_tree(root_a, seed=0)
    _jpeg_tree(root_b, seed=1)  # another folder with the same data set name and layout, other pixels
    assert _computed(tmp_path, root_a) == 1
    assert _computed(tmp_path, root_a) == 0  # unchanged: served from the cache
    factory_model(1)  # retrained behind the same factory string
    assert _computed(tmp_path, root_a) == 1
    assert _computed(tmp_path, root_b) == 1  # same name "cifar10", other images
    assert _computed(tmp_path, root_b) == 0
    import trustkit.attacks.square as square

    monkeypatch.setitem(square.DEFAULT_P_INIT, "linf", 0.3)  # a changed attack default
    assert _computed(tmp_path, root_b) == 1


def test_cache_key_holds_code_and_library_versions(monkeypatch):
    import trustkit.fingerprint as fingerprint

    payload = {"cell": 1}
    before = fingerprint.cache_key(payload)
    monkeypatch.setattr(fingerprint, "code_fingerprint", lambda: "other source")
    changed_code = fingerprint.cache_key(payload)
    monkeypatch.setattr(fingerprint, "library_versions", lambda: {"torch": "0.0"})
    assert len({before, changed_code, fingerprint.cache_key(payload)}) == 3


class _Noisy(torch.nn.Module):
    """A randomised model: Gaussian noise on the input at every call."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x + 0.05 * torch.randn_like(x))


def test_strong_runs_as_strong_rand_on_a_randomised_model(tmp_path, digits_softmax):
    config = BenchConfig(attacks=["strong"], eps=[0.1], n=20, out=str(tmp_path), probes=False,
                         strict_params={"steps": 5})
    result = run_bench(config, model=_Noisy(digits_softmax))
    row = result.results.iloc[0]
    assert row["attack"] == "strong-rand" and json.loads(row["attack_params"])["members"]["apgd-dlr"]["eot"] == 20
    assert "ran as <code>strong-rand</code>" in result.report.read_text()
    deterministic = run_bench(config, model=digits_softmax).results.iloc[0]
    assert deterministic["attack"] == "strong"


def test_weak_evaluations_say_they_are_an_upper_bound(tmp_path, digits_cnn, capsys):
    code, out, _ = run_cli(capsys, "bench", "fgsm", "--model", "cnn", "--eps", "0.1", "--n", "30", "--no-probes",
                           "--out", str(tmp_path))
    assert code == 0 and "Upper bound only" in " ".join(out.split())
    assert "trustkit bench strong --model cnn --dataset digits --norm linf --eps 0.1" in " ".join(out.split())
    html = next(tmp_path.glob("*/report.html")).read_text()
    assert "upper bound" in html and "trustkit bench strong --model cnn" in html


def test_minimum_norm_attacks_give_the_whole_curve_from_one_search(tmp_path, digits_cnn):
    """DeepFool's per-image minimal perturbations: an image counts as still robust at ε when its smallest
    adversarial example is larger than ε, so each grid cell (the search projected onto the ε-ball) is at most
    that fraction — and an image the model already gets wrong has size 0."""
    from trustkit.engine import BenchConfig, run_bench
    from trustkit.report.plots import surviving_fraction

    result = run_bench(BenchConfig(attacks=["deepfool"], norm="l2", eps=[0.25, 0.5, 1.0, 2.0], n=60, probes=False,
                                   out=str(tmp_path)))
    records = result.output.finished
    norms = records[0].data["min_norms"]
    assert all(r.data["min_norms"] == norms for r in records) and len(norms) == 60
    assert sum(n == 0.0 for n in norms) == round(60 * (1 - result.results["clean_accuracy"].iloc[0]))
    for record in records:
        robust = record.data["row"]["robust_accuracy"]  # float32 on some paths: 0.55 reads 0.55000001
        assert robust <= surviving_fraction(norms, record.cell.eps) + 1e-6
    assert "Smallest adversarial example per image" in (result.report).read_text()
