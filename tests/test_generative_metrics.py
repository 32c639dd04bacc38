"""Sample-quality metrics and likelihood bounds against closed-form answers."""
import math

import numpy as np
import pytest
import torch
from scipy import linalg

from trustkit.errors import InvalidArgumentError
from trustkit.generative.likelihood import (elbo, gaussian_kl, gaussian_log_density,
                                            importance_weighted_log_likelihood)
from trustkit.generative.metrics import (conditional_agreement, frechet_distance, frechet_distance_from_stats,
                                         kernel_inception_distance, mmd2_unbiased, mode_coverage,
                                         polynomial_kernel, precision_recall)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _random_spd(dim: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return a @ a.T + 0.1 * np.eye(dim)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    features = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_formula_for_diagonal_gaussians():
    # For diagonal covariances: ‖μ1 − μ2‖² + Σ (σ1 − σ2)², with σ the standard deviations.
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    sd1, sd2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    expected = ((mu1 - mu2) ** 2).sum() + ((sd1 - sd2) ** 2).sum()
    got = frechet_distance_from_stats(mu1, np.diag(sd1 ** 2), mu2, np.diag(sd2 ** 2))
    assert got == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(1 + 4 + 4 + 1)


def test_frechet_distance_matches_scipy_sqrtm_for_full_covariances():
    rng = np.random.default_rng(1)
    s1, s2 = _random_spd(6, rng), _random_spd(6, rng)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    reference = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-8)


def test_frechet_distance_of_samples_approaches_the_gaussian_value():
    rng = np.random.default_rng(2)
    s1, s2 = _random_spd(4, rng) / 4, _random_spd(4, rng) / 4
    mu1, mu2 = np.zeros(4), np.full(4, 0.5)
    exact = frechet_distance_from_stats(mu1, s1, mu2, s2)
    a = rng.multivariate_normal(mu1, s1, size=40_000)
    b = rng.multivariate_normal(mu2, s2, size=40_000)
    assert frechet_distance(a, b) == pytest.approx(exact, rel=0.05)


def test_feature_metrics_refuse_nan():
    bad = torch.zeros(10, 3)
    bad[0, 0] = float("nan")
    with pytest.raises(InvalidArgumentError, match="NaN"):
        frechet_distance(bad, torch.zeros(10, 3))


def test_mmd_estimator_matches_a_direct_double_loop():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64) + 1
    k = lambda a, b: (a @ b / 5 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(6) for j in range(6) if i != j) / (6 * 5)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(6)) / (7 * 6)
    got = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))
    assert float(got) == pytest.approx(float(xx + yy - 2 * xy), rel=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(2000, 8, generator=g), torch.randn(2000, 8, generator=g)
    same, same_std = kernel_inception_distance(a, b, subsets=20, subset_size=500)
    shifted, _ = kernel_inception_distance(a, b + 0.5, subsets=20, subset_size=500)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 50 * max(abs(same), same_std)


def test_kid_with_a_linear_kernel_estimates_the_squared_mean_difference():
    # With k(x, y) = xᵀy the unbiased MMD² has expectation ‖μx − μy‖²: a closed form we can check.
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3000, 4, generator=g, dtype=torch.float64)
    y = torch.randn(3000, 4, generator=g, dtype=torch.float64) + torch.tensor([1.0, 0.0, 0.0, 0.5], dtype=torch.float64)
    got = mmd2_unbiased(x @ x.T, y @ y.T, x @ y.T)
    assert float(got) == pytest.approx(1.25, abs=0.1)


def test_precision_recall_identical_disjoint_and_half_covered():
    g = torch.Generator().manual_seed(6)
    real = torch.randn(400, 2, generator=g)
    assert precision_recall(real, real.clone(), k=3) == (1.0, 1.0)
    far = real + 100.0
    assert precision_recall(real, far, k=3) == (0.0, 0.0)
    # Real data: two well-separated blobs; fakes cover only one of them -> precision ~1, recall ~0.5.
    blobs = torch.cat([torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g) + 50])
    one_blob = torch.randn(300, 2, generator=g)
    precision, recall = precision_recall(blobs, one_blob, k=3)
    assert precision > 0.95 and 0.45 <= recall <= 0.52


def test_mode_coverage_closed_forms():
    balanced = mode_coverage(torch.arange(100) % 10, 10)
    assert balanced.modes_covered == 10 and balanced.kl_to_uniform == pytest.approx(0.0, abs=1e-12)
    collapsed = mode_coverage(torch.full((100,), 3), 10)
    assert collapsed.modes_covered == 1 and collapsed.kl_to_uniform == pytest.approx(math.log(10))
    assert collapsed.counts[3] == 100
    half = mode_coverage(torch.arange(100) % 5, 10)  # five classes, equally: KL = log 10 − log 5 = log 2
    assert half.modes_covered == 5 and half.kl_to_uniform == pytest.approx(math.log(2))


def test_conditional_agreement_counts_confident_correct_answers():
    probs = torch.tensor([[0.95, 0.05], [0.6, 0.4], [0.2, 0.8], [0.05, 0.95]])
    result = conditional_agreement(probs, torch.tensor([0, 0, 0, 1]), threshold=0.9)
    assert result == {"accuracy": 0.75, "confident": 0.5}  # 0.6 is right but not sure enough
    assert conditional_agreement(probs, torch.tensor([0, 0, 1, 1]), 0.9)["confident"] == 0.5


def test_gaussian_kl_closed_form():
    mu, logvar = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, math.log(4.0)]])
    # KL per dim: (σ² + μ² − log σ² − 1)/2 -> 0 for N(0,1), (4 + 1 − log 4 − 1)/2 for N(1, 4)
    assert float(gaussian_kl(mu, logvar)) == pytest.approx((4 - math.log(4)) / 2)


class LinearGaussian:
    """p(z) = N(0, 1), p(x|z) = N(z, 1) in one dimension: p(x) = N(0, 2), posterior N(x/2, 1/2)."""

    def __init__(self, exact_posterior: bool) -> None:
        self.exact = exact_posterior

    def posterior(self, x, labels=None):
        if self.exact:
            return x / 2, torch.full_like(x, math.log(0.5))
        return torch.zeros_like(x), torch.zeros_like(x)  # q = prior: a poor proposal

    def log_likelihood(self, x, z, labels=None):
        return gaussian_log_density(x, z, torch.zeros_like(z))


def test_importance_weighted_bound_on_a_model_with_known_marginal():
    x = torch.tensor([[-1.5], [0.0], [0.7], [2.0]], dtype=torch.float64)
    exact = -0.5 * (math.log(2 * math.pi * 2) + x.squeeze(1) ** 2 / 2)
    g = torch.Generator().manual_seed(7)
    # With the true posterior as proposal every importance weight equals p(x): exact for any K.
    tight = importance_weighted_log_likelihood(LinearGaussian(True), x, k=3, generator=g)
    assert torch.allclose(tight, exact, atol=1e-10)
    # With a poor proposal the bound holds (ELBO <= L_K <= log p(x)) and tightens with K.
    poor = LinearGaussian(False)
    lower = torch.stack([elbo(poor, x, generator=g) for _ in range(200)]).mean(0)
    k1000 = importance_weighted_log_likelihood(poor, x, k=5000, generator=g, chunk=1000)
    assert (lower < k1000).all() and torch.allclose(k1000, exact, atol=0.03)
    # the ELBO of q = prior is known too: E[log N(x; z, 1)] − 0 = −(log 2π + x² + 1)/2
    assert torch.allclose(lower, -0.5 * (math.log(2 * math.pi) + x.squeeze(1) ** 2 + 1), atol=0.15)
