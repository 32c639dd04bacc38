"""trustkit's ``strong`` against an independent AutoAttack (torchattacks' port, standard version) on the same
adversarially trained model and images: trustkit must never leave more points robust (0.5-point tolerance)."""
from __future__ import annotations

import time

import pytest
import torch

from trustkit import load_dataset
from trustkit.attacks import make_attack

import torchattacks  # noqa: E402 - the test extra's independent reference: missing means a broken install

N_IMAGES = 200


@pytest.fixture(scope="module")
def robust_digits_model(trustkit_home):
    """The zoo cnn adversarially trained on digits with PGD at eps 0.1 (robust, gradients not masked)."""
    from trustkit.train import train_model

    return train_model("cnn", "digits", recipe="pgd", eps=0.1, epochs=15, seed=0, device="cpu").model.eval()


@pytest.mark.slow  # about 4 minutes on 2 cores (training included); CI runs it with `pytest -m slow`
@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5)])
def test_strong_is_at_least_as_strong_as_torchattacks_autoattack(robust_digits_model, norm, eps, one_torch_thread):
    model = robust_digits_model
    x, y = load_dataset("digits", "test").tensors(torch.arange(N_IMAGES))
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    started = time.perf_counter()
    torch.manual_seed(0)
    ours = make_attack("strong", eps, norm)(model, x, y)
    ours_seconds = time.perf_counter() - started
    reference = torchattacks.AutoAttack(model, norm="Linf" if norm == "linf" else "L2", eps=eps, version="standard",
                                        n_classes=10, seed=0)
    started = time.perf_counter()
    theirs = reference(x, y)
    theirs_seconds = time.perf_counter() - started
    with torch.no_grad():
        robust_ours = ((model(ours).argmax(1) == y) & correct).float().mean().item()
        robust_theirs = ((model(theirs).argmax(1) == y) & correct).float().mean().item()
    delta = (ours - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= eps).all())
    assert 0.2 < robust_theirs < correct.float().mean().item(), "the model must be partly robust for a fair test"
    assert robust_ours <= robust_theirs + 0.005, (
        f"{norm} eps {eps}: strong left {robust_ours:.1%} robust, AutoAttack {robust_theirs:.1%} "
        f"({ours_seconds:.1f} s vs {theirs_seconds:.1f} s)")
