"""FAB and FAB-T: minimal norms against torchattacks' FAB, the closed form on a linear model, the threat model,
options, FAB-T's targets, and per-sample independence."""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from trustkit.attacks import FAB, make_attack
from trustkit.attacks.fab import project_onto_hyperplane
from trustkit.errors import InvalidArgumentError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TA_NORM = {"linf": "Linf", "l2": "L2"}


def sizes(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    delta = (x_adv - x).flatten(1)
    return delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1)


def two_class_linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2)).eval()
    with torch.no_grad():
        model[1].weight.mul_(3)  # boundary within reach of most images in [0.25, 0.75]^64
    return model


def random_linear(seed: int = 0, classes: int = 10) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, classes)).eval()


@pytest.fixture(scope="module")
def digits_batch(digits_test):
    x, y = digits_test
    return x[:48], y[:48]


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_minimal_norms_match_torchattacks(digits_cnn, digits_batch, norm):
    """Median minimal norm at most 1.1× torchattacks' FAB (measured: equal to 1e-6 and ~2× faster, 20 steps)."""
    import torchattacks
    x, y = digits_batch
    correct = predict(digits_cnn, x) == y
    started = time.perf_counter()
    ours = FAB(0.3, norm=norm, steps=20).find_unbounded(digits_cnn, x, y)
    ours_s = time.perf_counter() - started
    # a huge eps makes torchattacks keep every adversarial example it finds (it returns the clean image beyond eps)
    reference = torchattacks.FAB(digits_cnn, norm=TA_NORM[norm], eps=100.0, steps=20, n_restarts=1,
                                 multi_targeted=False, n_classes=10)
    started = time.perf_counter()
    theirs = reference(x, y)
    theirs_s = time.perf_counter() - started
    assert bool((predict(digits_cnn, ours) != y)[correct].all())
    ratio = sizes(ours, x, norm)[correct].median() / sizes(theirs, x, norm)[correct].median()
    print(f"FAB {norm}: median norm ratio trustkit/torchattacks {ratio:.4f}, {ours_s:.2f} s vs {theirs_s:.2f} s")
    assert ratio <= 1.1


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5)])
def test_fab_t_robust_accuracy_no_worse_than_torchattacks(digits_cnn, digits_batch, norm, eps):
    import torchattacks
    x, y = digits_batch[0][:32], digits_batch[1][:32]
    started = time.perf_counter()
    ours = make_attack("fab-t", eps, norm, steps=20)(digits_cnn, x, y)
    ours_s = time.perf_counter() - started
    reference = torchattacks.FAB(digits_cnn, norm=TA_NORM[norm], eps=eps, steps=20, n_restarts=1,
                                 multi_targeted=True, n_classes=10)
    started = time.perf_counter()
    theirs = reference(x, y)
    theirs_s = time.perf_counter() - started
    robust_ours = int((predict(digits_cnn, ours) == y).sum())
    robust_theirs = int((predict(digits_cnn, theirs) == y).sum())
    print(f"FAB-T {norm} eps={eps}: robust {robust_ours} vs {robust_theirs} of {len(x)}, "
          f"{ours_s:.2f} s vs {theirs_s:.2f} s")
    assert robust_ours <= robust_theirs + 1
    assert bool((sizes(ours, x, norm) <= eps).all())


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_linear_two_class_model_matches_distance_to_hyperplane(norm):
    """For f_1 - f_0 = w·x + b the minimal perturbation is |w·x + b| / ||w||_dual (l2: ||w||_2, linf: ||w||_1),
    as long as the boundary point stays in [0, 1]; FAB must land within 1% of it (measured: 0.5%, from eta)."""
    model = two_class_linear()
    x = 0.25 + 0.5 * torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = predict(model, x)
    w = model[1].weight[1] - model[1].weight[0]
    margin = x.flatten(1) @ w + (model[1].bias[1] - model[1].bias[0])
    if norm == "l2":
        distance = margin.abs() / w.norm()
        boundary = x.flatten(1) - (margin / w.norm() ** 2)[:, None] * w
    else:
        distance = margin.abs() / w.abs().sum()
        boundary = x.flatten(1) - (distance * margin.sign())[:, None] * w.sign()
    inside = ((boundary >= 0) & (boundary <= 1)).all(dim=1)
    assert int(inside.sum()) >= 32
    x_adv = FAB(1.0, norm=norm, steps=30).find_unbounded(model, x, y)
    assert bool((predict(model, x_adv) != y).all())
    ratio = (sizes(x_adv, x, norm) / distance.detach())[inside]
    assert bool((ratio <= 1.01).all()) and bool((ratio >= 1 - 1e-4).all())


def test_box_constrained_projection_reaches_hyperplane_at_least_cost():
    """Every feasible projection lands on the hyperplane inside the box, no costlier than the unconstrained
    closed-form step whenever that one happens to stay inside the box."""
    generator = torch.Generator().manual_seed(2)
    t = torch.rand(300, 20, generator=generator)
    w = torch.randn(300, 20, generator=generator)
    w[:100, :5] = 0  # coordinates the hyperplane ignores must not move
    b = (w * t).sum(1) + 0.5 * torch.randn(300, generator=generator)
    for norm in ("linf", "l2"):
        d = project_onto_hyperplane(t, w, b, norm)
        assert bool(((t + d) >= 0).all()) and bool(((t + d) <= 1).all())
        assert bool((d[:100, :5] == 0).all())
        gap = (w * t).sum(1) - b
        free = -gap[:, None] * w / w.norm(dim=1, keepdim=True) ** 2 if norm == "l2" else \
            -(gap / w.abs().sum(1))[:, None] * w.sign()
        unconstrained_fits = ((t + free) >= 0).all(1) & ((t + free) <= 1).all(1)
        assert bool(torch.allclose((w * (t + d)).sum(1)[unconstrained_fits], b[unconstrained_fits], atol=1e-4))
        assert bool(torch.allclose(sizes(t + d, t, norm)[unconstrained_fits],
                                   sizes(t + free, t, norm)[unconstrained_fits], rtol=1e-4, atol=1e-6))


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("linf", 8 / 255), ("l2", 0.3), ("l2", 1.0)])
@pytest.mark.parametrize("early_stop", [True, False])
def test_results_inside_threat_model_and_adversarial_where_found(norm, eps, early_stop):
    model = random_linear(3)
    x = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    y = predict(model, x)
    y[:3] = (y[:3] + 1) % 10  # misclassified images stay valid results
    attack = FAB(eps, norm=norm, steps=15, early_stop=early_stop)
    x_adv = attack(model, x, y)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert bool((sizes(x_adv, x, norm) <= eps).all())
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert all(p.grad is None for p in model.parameters())
    # wherever the unbounded search has a point well inside eps, the bounded attack returns an adversarial one
    found = sizes(attack.find_unbounded(model, x, y), x, norm) <= 0.98 * eps
    assert bool((predict(model, x_adv) != y)[found].all())
    if early_stop:  # AutoAttack's convention: the clean image where nothing was found within eps
        standing = predict(model, x_adv) == y
        assert torch.equal(x_adv[standing], x[standing])


def test_early_stop_does_not_change_successes(digits_cnn, digits_batch):
    x, y = digits_batch[0][:24], digits_batch[1][:24]
    fooled = {}
    for early_stop in (True, False):
        x_adv = FAB(0.1, steps=20, early_stop=early_stop)(digits_cnn, x, y)
        fooled[early_stop] = predict(digits_cnn, x_adv) != y
    assert int((fooled[True] != fooled[False]).sum()) <= 1  # float noise of batch sizes could flip a borderline one


def test_options_are_keyword_only_validated_and_recorded():
    with pytest.raises(TypeError):
        FAB(0.1, "l2")
    with pytest.raises(InvalidArgumentError):
        FAB(0.1, norm="l1")
    with pytest.raises(InvalidArgumentError):
        make_attack("fab", 0.1, "l1")
    for bad in ({"steps": 0}, {"restarts": 0}, {"targets": -1}, {"alpha_max": 0.0}, {"alpha_max": 1.5},
                {"eta": 0.9}, {"beta": 0.0}, {"beta": 1.1}):
        with pytest.raises(InvalidArgumentError):
            FAB(0.1, **bad)
    params = make_attack("fab-t", "8/255", "l2", steps=7).params()
    assert params == {"norm": "l2", "eps": 8 / 255, "targeted": False, "early_stop": True, "steps": 7,
                      "restarts": 1, "targets": 9, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9}
    assert FAB.minimum_norm and FAB.norms == ("linf", "l2") and FAB.access == "white-box"


def test_fab_t_from_registry_finds_misclassifying_points(digits_cnn, digits_batch):
    x, y = digits_batch[0][:16], digits_batch[1][:16]
    attack = make_attack("fab-t", 0.3)
    assert isinstance(attack, FAB) and attack.targets == 9 and attack.steps == 100
    x_adv = make_attack("fab-t", 0.3, steps=20).find_unbounded(digits_cnn, x, y)  # 20 steps keep the test fast
    assert bool((predict(digits_cnn, x_adv) != y).all())
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_fab_t_on_two_classes_caps_targets_and_one_class_is_refused():
    model = two_class_linear()
    x = 0.25 + 0.5 * torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    y = predict(model, x)
    targeted = FAB(1.0, norm="l2", steps=10, targets=9).find_unbounded(model, x, y)
    untargeted = FAB(1.0, norm="l2", steps=10).find_unbounded(model, x, y)
    assert torch.allclose(targeted, untargeted, atol=1e-6)  # with 2 classes the one target is the one boundary
    with pytest.raises(InvalidArgumentError):
        FAB(0.1).find_unbounded(nn.Sequential(nn.Flatten(), nn.Linear(64, 1)), x, torch.zeros(8, dtype=torch.long))


@pytest.mark.parametrize("targets", [0, 3])
def test_sample_result_does_not_depend_on_its_batch(digits_cnn, digits_batch, targets):
    x, y = digits_batch[0][:8], digits_batch[1][:8]
    attack = FAB(0.1, norm="l2", steps=15, targets=targets)
    together = attack.find_unbounded(digits_cnn, x, y)
    alone = torch.cat([attack.find_unbounded(digits_cnn, x[i:i + 1], y[i:i + 1]) for i in range(len(x))])
    assert torch.allclose(together, alone, atol=1e-5)  # convolutions round differently per batch size


def test_restarts_never_worsen_the_minimum(digits_cnn, digits_batch):
    x, y = digits_batch[0][:16], digits_batch[1][:16]
    one = sizes(FAB(0.2, steps=15).find_unbounded(digits_cnn, x, y), x, "linf")
    torch.manual_seed(0)
    three = sizes(FAB(0.2, steps=15, restarts=3).find_unbounded(digits_cnn, x, y), x, "linf")
    assert bool((three <= one + 1e-6).all())


def test_runs_inside_no_grad_and_at_zero_eps():
    model = random_linear(6)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    y = predict(model, x)
    with torch.no_grad():  # callers such as evaluation loops may disable autograd; FAB still needs input gradients
        x_adv = FAB(0.5, steps=10)(model, x, y)
    assert bool((predict(model, x_adv) != y).any())
    assert torch.equal(FAB(0.0, steps=10)(model, x, y), x)
