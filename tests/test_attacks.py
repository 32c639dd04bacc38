"""Attack invariants: threat model, analytic answers on a linear model, PGD >= FGSM, no weight gradients."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trustkit.attacks import FGSM, PGD, make_attack
from trustkit.data import get_spec
from trustkit.errors import InvalidArgumentError, ShapeMismatchError
from trustkit.models import build_model


def linear_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("softmax", get_spec("digits")).eval()


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@settings(max_examples=25, deadline=None)
@given(eps=st.floats(0, 1), seed=st.integers(0, 1000), norm=st.sampled_from(["linf", "l2"]),
       attack=st.sampled_from(["fgsm", "pgd"]))
def test_output_inside_threat_model_and_unit_box(eps, seed, norm, attack):
    model = linear_model(seed % 7)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(12, 1, 8, 8, generator=generator)
    y = torch.randint(0, 10, (12,), generator=generator)
    x_adv = make_attack(attack, eps, norm, **({"steps": 3} if attack == "pgd" else {}))(model, x, y)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= eps).all())
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert x_adv.shape == x.shape and not x_adv.requires_grad


def test_fgsm_on_linear_model_matches_closed_form():
    """For logits W·norm(x)+b, d CE/dx = W^T (softmax - onehot) / std, so FGSM = clip(x + eps·sign(W^T(p - e_y)))."""
    model = linear_model()
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(32) % 10
    eps = 0.1
    weight = model.net[1].weight  # 10 × 64
    with torch.no_grad():
        p = model(x).softmax(1)
        direction = ((p - torch.nn.functional.one_hot(y, 10).float()) @ weight).view_as(x)
    expected = (x + eps * direction.sign()).clamp(0, 1)
    assert torch.allclose(FGSM(eps)(model, x, y), expected, atol=1e-6)


def test_l2_fgm_on_linear_model_matches_closed_form():
    model = linear_model()
    x = torch.full((8, 1, 8, 8), 0.5)
    y = torch.arange(8)
    eps = 0.2  # small enough that no pixel leaves [0, 1]
    weight = model.net[1].weight
    with torch.no_grad():
        g = ((model(x).softmax(1) - torch.nn.functional.one_hot(y, 10).float()) @ weight).view_as(x)
    expected = x + eps * (1 - 1e-5) * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert torch.allclose(FGSM(eps, norm="l2")(model, x, y), expected, atol=1e-5)


def test_targeted_fgsm_moves_towards_target():
    model = linear_model()
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    target = torch.full((64,), 3)
    x_adv = FGSM(0.2, targeted=True)(model, x, target)
    with torch.no_grad():
        before = torch.nn.functional.cross_entropy(model(x), target)
        after = torch.nn.functional.cross_entropy(model(x_adv), target)
    assert after < before


def test_pgd_no_weaker_than_fgsm_on_trained_model(digits_cnn, digits_test):
    x, y = digits_test
    for eps in (0.05, 0.1, 0.2):
        torch.manual_seed(0)
        fgsm = accuracy(digits_cnn, FGSM(eps)(digits_cnn, x, y), y)
        pgd = accuracy(digits_cnn, PGD(eps, steps=10)(digits_cnn, x, y), y)
        assert pgd <= fgsm, (eps, pgd, fgsm)
    # and the attack does something real: PGD at 0.2 breaks most of a clean 98% model
    assert accuracy(digits_cnn, x, y) > 0.95
    assert pgd < 0.3


def test_pgd_restarts_never_weaken(digits_cnn, digits_test):
    x, y = digits_test
    torch.manual_seed(0)
    one = accuracy(digits_cnn, PGD(0.1, steps=5)(digits_cnn, x, y), y)
    torch.manual_seed(0)
    three = accuracy(digits_cnn, PGD(0.1, steps=5, restarts=3)(digits_cnn, x, y), y)
    assert three <= one


def test_pgd_l2_reduces_accuracy(digits_cnn, digits_test):
    x, y = digits_test
    torch.manual_seed(0)
    assert accuracy(digits_cnn, PGD(1.5, norm="l2")(digits_cnn, x, y), y) < accuracy(digits_cnn, x, y) - 0.3


def test_attack_takes_no_weight_gradients_and_restores_mode():
    torch.manual_seed(0)
    model = build_model("cnn", get_spec("digits"))
    model.train()  # the attack must switch to eval and back, and not touch BatchNorm/weights
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.rand(8, 1, 8, 8), torch.arange(8)
    seen_modes = []
    model.register_forward_pre_hook(lambda module, args: seen_modes.append(module.training))
    PGD(0.1, steps=2)(model, x, y)
    assert seen_modes and not any(seen_modes)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert not frozen.requires_grad and all(p.requires_grad for p in list(model.parameters())[1:])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_attack_rejects_bad_inputs():
    model = linear_model()
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ShapeMismatchError, match="N×C×H×W"):
        FGSM(0.1)(model, torch.rand(1, 8, 8), y[:1])
    with pytest.raises(InvalidArgumentError, match=r"\[0, 1\]"):
        FGSM(0.1)(model, torch.rand(2, 1, 8, 8) * 255, y)
    with pytest.raises(InvalidArgumentError):
        FGSM(0.1)(model, torch.full((2, 1, 8, 8), float("nan")), y)
    with pytest.raises(ShapeMismatchError, match="one label per image"):
        FGSM(0.1)(model, torch.rand(2, 1, 8, 8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(InvalidArgumentError):
        PGD(0.1, steps=0)


def test_fgsm_agrees_with_art_elementwise(digits_cnn, digits_test):
    import art
    from art.attacks.evasion import FastGradientMethod
    from art.estimators.classification import PyTorchClassifier

    x, y = digits_test
    classifier = PyTorchClassifier(model=digits_cnn, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8),
                                   nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    ours = FGSM(0.1)(digits_cnn, x, y)
    theirs = torch.from_numpy(FastGradientMethod(classifier, eps=0.1).generate(x.numpy(), y=y.numpy()))
    agree = (ours - theirs).abs().le(1e-5).float().mean().item()
    assert agree > 0.999, f"{art.__version__}: only {agree:.4%} of pixels agree"
    assert abs(accuracy(digits_cnn, ours, y) - accuracy(digits_cnn, theirs, y)) <= 0.005


def test_attack_works_inside_no_grad(digits_cnn, digits_test):
    x, y = digits_test
    with torch.no_grad():
        x_adv = PGD(0.2, steps=3)(digits_cnn, x[:50], y[:50])
    assert accuracy(digits_cnn, x_adv, y[:50]) < accuracy(digits_cnn, x[:50], y[:50])
