"""trustkit certify: randomized smoothing against the closed form of a linear classifier, the statistics against
SciPy, PREDICT on the decision boundary, Gaussian-noise training, and the study end to end through the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binomtest, norm
from torch import nn

from trustkit.certify import (ABSTAIN, Smoothed, lower_confidence_bound, max_certifiable_radius, radius_from_bound,
                              smooth_adversarial)

from tests.helpers import run_cli


class Halfspace(nn.Module):
    """f(x) = 1[w·x + b > 0] as two logits (−s, s), s = w·x + b: its smoothed probability of class 1 is
    Φ((w·x + b)/(σ‖w‖)) and the distance of x to its decision boundary |w·x + b|/‖w‖."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = (x * self.w).flatten(1).sum(1) + self.b
        return torch.stack([-score, score], 1)

    def score(self, x: torch.Tensor) -> np.ndarray:
        return ((x * self.w).flatten(1).sum(1) + self.b).numpy()


@pytest.fixture(scope="module")
def halfspace() -> Halfspace:
    generator = torch.Generator().manual_seed(0)
    return Halfspace(torch.randn(1, 1, 4, 4, generator=generator), 0.3)


def test_the_radius_of_exact_probabilities_is_the_distance_to_the_hyperplane(halfspace):
    sigma = 0.5
    x = torch.rand(32, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    score, w_norm = halfspace.score(x), float(halfspace.w.norm())
    distance = np.abs(score) / w_norm
    p_top = norm.cdf(np.abs(score) / (sigma * w_norm))  # the smoothed probability of the predicted side
    np.testing.assert_allclose(radius_from_bound(p_top, sigma), distance, rtol=1e-9, atol=1e-12)


def test_monte_carlo_certificates_of_a_linear_classifier_approach_the_closed_form(halfspace):
    """With N = 100,000 the empirical probability lies within binomial noise of Φ(s/(σ‖w‖)), the certified radius
    never exceeds the true distance (up to α), and comes within a few percent of σ of it."""
    sigma, n = 0.5, 100_000
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(6, 1, 4, 4, generator=generator) * 0.6
    smoothed = Smoothed(halfspace, sigma, batch_size=20_000, device="cpu")
    score, w_norm = halfspace.score(x), float(halfspace.w.norm())
    counts = smoothed.sample_counts(x, n, seed=3).numpy()
    exact = norm.cdf(score / (sigma * w_norm))
    np.testing.assert_allclose(counts[:, 1] / n, exact, atol=5 * math.sqrt(0.25 / n))
    certificate = smoothed.certify(x, 100, n, 0.001, seed=3)
    distance = np.abs(score) / w_norm
    certified = certificate.prediction != ABSTAIN
    assert certified.sum() >= 4
    assert (certificate.prediction[certified] == (score[certified] > 0)).all()
    assert (certificate.radius[certified] <= distance[certified]).all()
    assert np.abs(certificate.radius[certified] - distance[certified]).max() < 0.05 * sigma


def test_the_clopper_pearson_bound_matches_its_closed_forms():
    alpha = 0.001
    for n in (10, 100, 1000, 100_000):
        assert lower_confidence_bound(n, n, alpha) == pytest.approx(alpha ** (1 / n), rel=1e-10)  # all successes
        assert max_certifiable_radius(0.5, n, alpha) == pytest.approx(0.5 * norm.ppf(alpha ** (1 / n)), rel=1e-10)
    assert lower_confidence_bound(0, 50, alpha) == 0.0
    assert lower_confidence_bound(1, 1, 0.05) == pytest.approx(0.05)  # one success in one trial: Beta(1, 1)
    # the one-sided (1 − α) bound is the lower end of SciPy's exact two-sided (1 − 2α) interval
    for k, n in ((7, 10), (480, 500), (9_990, 10_000)):
        expected = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * alpha, method="exact").low
        assert lower_confidence_bound(k, n, alpha) == pytest.approx(expected, rel=1e-9)
    assert max_certifiable_radius(0.25, 100_000, 0.001) == pytest.approx(0.953, abs=1e-3)


def test_predict_abstains_on_the_decision_boundary(halfspace):
    x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    w = halfspace.w
    on_boundary = x - torch.from_numpy(halfspace.score(x)).view(-1, 1, 1, 1) * w / w.pow(2).sum()
    assert np.abs(halfspace.score(on_boundary)).max() < 1e-5
    smoothed = Smoothed(halfspace, 0.25, batch_size=2000, device="cpu")
    assert (smoothed.predict(on_boundary, 2000, 0.001, seed=0) == ABSTAIN).all()
    assert (smoothed.certify(on_boundary, 100, 2000, 0.001, seed=0).prediction == ABSTAIN).all()
    far = on_boundary + 3.0 * w / w.norm()  # three noise widths on the positive side
    assert (smoothed.predict(far, 2000, 0.001, seed=0) == 1).all()


def test_an_image_draws_the_same_noise_whatever_its_batch_and_chunk(halfspace):
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(5)) * 0.2
    index = torch.tensor([10, 11, 12, 13, 14])
    whole = Smoothed(halfspace, 0.5, batch_size=64).sample_counts(x, 300, seed=1, index=index)
    part = Smoothed(halfspace, 0.5, batch_size=1000).sample_counts(x[2:4], 300, seed=1, index=index[2:4])
    assert torch.equal(whole[2:4], part)
    other = Smoothed(halfspace, 0.5, batch_size=64).sample_counts(x, 300, seed=2, index=index)
    assert not torch.equal(whole, other)


def test_the_smoothed_attack_stays_inside_each_budget(halfspace):
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(6))
    eps = torch.linspace(0.05, 0.6, 6)
    target = torch.as_tensor(halfspace.score(x) > 0).long()
    x_adv = smooth_adversarial(halfspace, x, target, eps, 0.25, steps=10, samples=8, seed=0)
    norms = (x_adv - x).flatten(1).norm(dim=1)
    assert (norms <= eps).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (norms > 0.5 * eps).all(), "a linear score always has a gradient: the attack must move"
    moved = halfspace.score(x_adv) * np.where(target.numpy() == 1, 1, -1)
    assert (moved < halfspace.score(x) * np.where(target.numpy() == 1, 1, -1)).all()


def test_gaussian_training_store_name_round_trips_and_skips_the_adversarial_guard(monkeypatch, tmp_path):
    import importlib

    from trustkit.models.store import read_metadata
    from trustkit.train import gaussian_entry, store_name, train_model

    assert store_name("cnn", "mnist", "gaussian", sigma=0.25) == "cnn-mnist-gaussian-sigma0.25"
    assert store_name("cnn", "digits", "gaussian", sigma=1.0) == "cnn-digits-gaussian-sigma1"
    for sigma in (0.12, 0.25, 0.5, 1.0):
        assert gaussian_entry(store_name("mlp", "digits", "gaussian", sigma=sigma), "digits") == ("mlp", sigma)
    assert gaussian_entry("cnn-digits-gaussian-sigma0.25", "mnist") is None
    assert gaussian_entry("cnn-digits-pgd-eps0.2", "digits") is None

    def no_guard(*args, **kwargs):
        raise AssertionError("the PGD/Square epoch guard must not run for Gaussian-noise training")

    monkeypatch.setattr(importlib.import_module("trustkit.train.fit"), "guard_scores", no_guard)
    result = train_model("softmax", "digits", recipe="gaussian", sigma=0.5, epochs=3, device="cpu",
                         out=tmp_path / "noisy.safetensors")
    meta = read_metadata(result.path)
    assert meta["recipe"]["recipe"] == "gaussian" and meta["recipe"]["sigma"] == 0.5
    assert result.history.best_epoch is None and len(result.history.epochs) == 3
    assert result.history.final_accuracy > 0.5


CLI = ["-q", "certify", "--n", "100", "--n-images", "60", "--attack-n", "6", "--attack-steps", "5",
       "--attack-samples", "8", "--device", "cpu"]


def _last_run(folder):
    return sorted(folder.iterdir())[-1]


def test_certify_cli_end_to_end_with_report_and_cache(tmp_path, capsys):
    code, out, err = run_cli(capsys, *CLI, "-o", str(tmp_path))
    assert code == 0, err
    assert "report:" in out and "r=0" in out
    run_dir = _last_run(tmp_path)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["kind"] == "certify" and info["cells"] == {"total": 3, "computed": 3, "from_cache": 0, "failed": 0}
    results = pd.read_csv(run_dir / "results.csv")
    certificates = pd.read_csv(run_dir / "certificates.csv")
    attack = pd.read_csv(run_dir / "attack.csv")
    assert len(certificates) == 60 and set(results["entry"]) == {"cnn-digits-gaussian-sigma0.25"}
    limit = max_certifiable_radius(0.25, 100, 0.001)
    assert certificates["radius"].max() <= limit + 1e-9 and (results["radius"] <= limit).all()
    at_zero = results.loc[results["radius"] == 0].iloc[0]
    assert at_zero["certified_accuracy"] > 0.8 and at_zero["acr"] > 0
    assert (results["certified_accuracy"].diff().dropna() <= 0).all()
    assert list(attack["fraction"]) == [0.5, 0.9, 1.5] and (attack["violations"] == 0).all()
    assert (attack.loc[attack["inside"], "max_norm_over_radius"] < 1).all()
    names = {c["name"]: c["status"] for c in info["sanity_checks"]}
    assert names["certificate consistency: cnn σ=0.25"] == "pass"
    assert names["sample size reach: σ=0.25, N=100"] == "pass"
    html = (run_dir / "report.html").read_text()
    assert "Certified accuracy against ℓ2 radius" in html and "Consistency check" in html
    assert html.count("data:image/png") == 1
    assert run_cli(capsys, *CLI, "-o", str(tmp_path))[0] == 0
    assert json.loads((_last_run(tmp_path) / "run.json").read_text())["cells"]["from_cache"] == 3
    # a radius beyond the reach of N is flagged, plainly
    assert run_cli(capsys, *CLI, "--radius", "0,0.5,1", "-o", str(tmp_path / "far"))[0] == 0
    checks = json.loads((_last_run(tmp_path / "far") / "run.json").read_text())["sanity_checks"]
    reach = next(c for c in checks if c["name"].startswith("sample size reach"))
    assert reach["status"] == "flag" and "0 by construction" in reach["detail"]


def test_changing_n_or_the_attack_recomputes_only_what_it_changes(tmp_path, capsys):
    assert run_cli(capsys, *CLI, "-o", str(tmp_path / "a"))[0] == 0
    assert run_cli(capsys, *CLI, "--attack-steps", "6", "-o", str(tmp_path / "b"))[0] == 0
    assert json.loads((_last_run(tmp_path / "b") / "run.json").read_text())["cells"] == {
        "total": 3, "computed": 1, "from_cache": 2, "failed": 0}
    assert run_cli(capsys, *[a if a != "100" else "120" for a in CLI], "-o", str(tmp_path / "c"))[0] == 0
    assert json.loads((_last_run(tmp_path / "c") / "run.json").read_text())["cells"]["computed"] == 3


def test_the_cache_key_holds_sigma_and_every_number_setting():
    from dataclasses import replace

    from trustkit.studies.certify import CertifyCell, CertifyConfig, CertifyState, certify_study

    state = CertifyState(nn.Identity(), "m", "m", "file:abc", 0.25, torch.zeros(4, 1, 8, 8),
                         torch.zeros(4, dtype=torch.long), torch.arange(4), 10)
    base = CertifyConfig()
    cell = CertifyCell("m", 0.25, 0, 4)
    key = certify_study(base).key(cell, state, "cpu")
    assert certify_study(replace(base, out="elsewhere", jobs=2)).key(cell, state, "cpu") == key
    assert certify_study(replace(base, attack_steps=3)).key(cell, state, "cpu") == key  # chunk: attack not used
    for changed in (replace(base, n=2000), replace(base, n0=50), replace(base, alpha=0.01), replace(base, seed=1)):
        assert certify_study(changed).key(cell, state, "cpu") != key
    assert certify_study(base).key(CertifyCell("m", 0.5, 0, 4), state, "cpu") != key
    assert certify_study(base).key(cell, state, "cuda") != key


@pytest.mark.parametrize("args, message", [
    (["--sigma", "-0.5"], "--sigma must be"),
    (["--sigma", "abc"], "cannot read --sigma"),
    (["--alpha", "0.7"], "--alpha must lie in (0, 0.5)"),
    (["--n", "0"], "--n must be"),
    (["--attack-fraction", "0"], "--attack-fraction must be > 0"),
    (["--model", "cnn,cnn"], "named twice"),
])
def test_certify_bad_input_is_one_line(args, message, tmp_path, capsys):
    code, out, err = run_cli(capsys, "certify", *args, "-o", str(tmp_path))
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and errors[0] == err.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())


def test_train_noise_refuses_adversarial_options(capsys):
    code, _, err = run_cli(capsys, "train", "--model", "cnn", "--noise", "0.25", "--adv", "pgd", "--eps", "0.1")
    assert code == 2 and "--noise trains with Gaussian noise" in err
    code, _, err = run_cli(capsys, "train", "--model", "cnn", "--noise", "-1")
    assert code == 2 and "--noise must be" in err
