"""The attack suite: APGD, BIM, MI-FGSM, C&W, DeepFool, the strong ensemble, early stopping, analytic cases."""
import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trustkit.attacks import (ATTACKS, APGD, PGD, CarliniWagnerL2, DeepFool, StrongEnsemble, make_attack,
                              supported_norms)
from trustkit.attacks.losses import dlr, dlr_targeted
from trustkit.data import get_spec
from trustkit.errors import InvalidArgumentError
from trustkit.models import build_model

FAST = {"steps": 3, "binary_search_steps": 2, "n_queries": 50, "square.n_queries": 50}


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def linear_model(seed=0, scale=1.0):
    torch.manual_seed(seed)
    model = build_model("softmax", get_spec("digits")).eval()
    with torch.no_grad():
        model.net[1].weight.mul_(scale)
    return model


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(sorted(ATTACKS.names())), eps=st.floats(0.0, 1.0), norm=st.sampled_from(["linf", "l2"]),
       seed=st.integers(0, 500))
@example(name="apgd-ce", eps=1.192092896e-07, norm="l2", seed=1)  # eps at the float32 spacing of the pixels
def test_every_attack_stays_inside_threat_model(name, eps, norm, seed):
    if norm not in supported_norms(name):
        norm = supported_norms(name)[0]
    model = linear_model(seed % 5)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(6, 1, 8, 8, generator=generator)
    y = torch.randint(0, 10, (6,), generator=generator)
    x_adv = make_attack(name, eps, norm, ignore_unknown=True, **FAST)(model, x, y)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= eps).all()) and all(v <= eps for v in size.tolist())  # float32 and double semantics
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_dlr_is_shift_and_scale_invariant_and_signed():
    logits = torch.tensor([[5.0, 1.0, 0.0, -1.0], [0.0, 3.0, 1.0, 2.0]])
    y = torch.tensor([0, 0])
    base = dlr(logits, y)
    assert torch.allclose(dlr(3 * logits + 7, y), base, atol=1e-6)
    # sample 0 is correct with margin 4 over a spread of 5 -> -0.8; sample 1 is wrong: -(0-3)/(3-1) = 1.5
    assert torch.allclose(base, torch.tensor([-0.8, 1.5]))
    target = torch.tensor([1, 3])
    expected = torch.tensor([-(5 - 1) / (5 - (0 - 1) / 2), -(0 - 2) / (3 - (1 + 0) / 2)])
    assert torch.allclose(dlr_targeted(logits, y, target), expected)


def test_apgd_at_least_as_strong_as_pgd10(digits_cnn, digits_test):
    x, y = digits_test
    for eps in (0.1, 0.15):
        torch.manual_seed(0)
        pgd = accuracy(digits_cnn, PGD(eps, steps=10)(digits_cnn, x, y), y)
        torch.manual_seed(0)
        apgd = accuracy(digits_cnn, APGD(eps, steps=50)(digits_cnn, x, y), y)
        torch.manual_seed(0)
        apgd_t = accuracy(digits_cnn, make_attack("apgd-t", eps, steps=50)(digits_cnn, x, y), y)
        assert apgd <= pgd + 1 / len(y) and apgd_t <= apgd + 1 / len(y), (eps, pgd, apgd, apgd_t)


def test_early_stop_returns_first_fooling_iterate_and_matches_full_run(digits_cnn, digits_test):
    x, y = digits_test
    torch.manual_seed(0)
    early = PGD(0.1, steps=10)(digits_cnn, x, y)
    torch.manual_seed(0)
    full = PGD(0.1, steps=10, early_stop=False)(digits_cnn, x, y)
    with torch.no_grad():
        fooled_early = digits_cnn(early).argmax(1) != y
        fooled_full = digits_cnn(full).argmax(1) != y
    # early stopping keeps any iterate that fooled; the full run's last iterate may have wandered back
    assert fooled_early.float().mean() >= fooled_full.float().mean()
    assert (fooled_full & ~fooled_early).float().mean() < 0.02  # same trajectories, up to float noise


def test_deepfool_on_a_linear_model_finds_the_nearest_boundary():
    """For an affine classifier the minimal L2 perturbation is min_k |f_k - f_y| / ||w_k - w_y|| (in pixels)."""
    model = linear_model(scale=0.2)
    x = torch.full((10, 1, 8, 8), 0.5)
    x = x + 0.05 * torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(1)
        logits = model(x)
    std = get_spec("digits").std[0]
    weight = model.net[1].weight / std  # d logits / d pixels
    expected = []
    for i in range(10):
        w_diff = weight - weight[y[i]]
        f_diff = logits[i] - logits[i, y[i]]
        distances = f_diff.abs() / w_diff.norm(dim=1)
        distances[y[i]] = math.inf
        expected.append(distances.min().item())
    found = DeepFool(10.0, overshoot=0.0).find_unbounded(model, x, y)
    norms = (found - x).flatten(1).norm(dim=1)
    assert torch.allclose(norms, torch.tensor(expected), rtol=1e-3, atol=2e-4)
    with torch.no_grad():
        assert (model(DeepFool(10.0, overshoot=0.02).find_unbounded(model, x, y)).argmax(1) != y).all()


def test_cw_never_beats_the_analytic_minimum_and_gets_close():
    model = linear_model(scale=0.2)
    x = 0.5 + 0.05 * torch.randn(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(1)
    minimal = (DeepFool(10.0, overshoot=0.0).find_unbounded(model, x, y) - x).flatten(1).norm(dim=1)
    found = CarliniWagnerL2(10.0, steps=200, binary_search_steps=6, lr=0.05).find_unbounded(model, x, y)
    with torch.no_grad():
        success = model(found).argmax(1) != y
    norms = (found - x).flatten(1).norm(dim=1)
    assert success.float().mean() >= 0.9
    assert (norms[success] >= minimal[success] * 0.999).all()  # nothing is closer than the true boundary
    assert (norms[success] <= minimal[success] * 1.5).all()


def test_minimum_norm_attack_projection_obeys_eps(digits_cnn, digits_test):
    x, y = digits_test[0][:40], digits_test[1][:40]
    for eps in (0.3, 1.0):
        x_adv = DeepFool(eps)(digits_cnn, x, y)
        assert (x_adv - x).flatten(1).norm(dim=1).max() <= eps


def test_strong_ensemble_is_worst_case_and_credits_members(digits_cnn, digits_test):
    x, y = digits_test
    eps = 0.1
    members = ("fgsm", "pgd")
    torch.manual_seed(0)
    ensemble = StrongEnsemble(eps, members=members, steps=10)
    x_adv = ensemble(digits_cnn, x, y)
    robust = accuracy(digits_cnn, x_adv, y)
    torch.manual_seed(0)
    single = [accuracy(digits_cnn, make_attack(m, eps, ignore_unknown=True, steps=10)(digits_cnn, x, y), y)
              for m in members]
    assert robust <= min(single) + 1 / len(y)
    broken = ensemble.last_broken_by
    with torch.no_grad():
        wrong = digits_cnn(x_adv).argmax(1) != y
        clean_wrong = digits_cnn(x).argmax(1) != y
    assert ((broken >= 0) == (wrong & ~clean_wrong)).all()
    # FGSM breaks most points; PGD, attacking only what FGSM left standing, breaks more of them
    assert (broken == 0).sum() > 0 and (broken == 1).sum() > 0


def test_strong_rejects_itself_and_unknown_members():
    with pytest.raises(InvalidArgumentError):
        StrongEnsemble(0.1, members="strong")
    with pytest.raises(Exception, match="did you mean 'pgd'"):
        StrongEnsemble(0.1, members="pgdd")


def test_unknown_attack_parameter_is_rejected():
    with pytest.raises(InvalidArgumentError, match="takes no parameter bogus"):
        make_attack("pgd", 0.1, bogus=3)


def test_apgd_targeted_needs_four_classes():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    with pytest.raises(InvalidArgumentError, match="at least 4 classes"):
        make_attack("apgd-t", 0.1)(model, torch.rand(2, 1, 8, 8), torch.tensor([0, 1]))
