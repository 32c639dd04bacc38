"""FMN against the closed-form minimal perturbation of a linear classifier, and beside FAB on a trained cnn."""
from __future__ import annotations

import torch
from torch import nn

from trustkit.attacks import FAB, FMN


def _linear(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(64, generator=generator)
    x = 0.3 + 0.4 * torch.rand(24, 1, 8, 8, generator=generator)  # interior: the box does not bind
    b = 0.5 - float((x.flatten(1) @ w).mean())
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[1] = w
        model[1].bias.copy_(torch.tensor([0.0, b]))
        y = model(x).argmax(1)
    return model, x, y, w, b


def test_fmn_reaches_the_closed_form_minimum_of_a_linear_classifier():
    """The smallest perturbation that crosses w·x + b = 0 has size |w·x + b| / ‖w‖₂ (l2) or / ‖w‖₁ (linf)."""
    model, x, y, w, b = _linear()
    margin = (x.flatten(1) @ w + b).abs()
    for norm, dual in (("l2", w.norm()), ("linf", w.abs().sum())):
        optimum = margin / dual
        found = FMN(1.0, norm=norm, steps=200).find(model, x, y)
        delta = (found - x).flatten(1)
        size = delta.norm(dim=1) if norm == "l2" else delta.abs().amax(1)
        assert (model(found).argmax(1) != y).all(), norm
        assert (size >= optimum * (1 - 1e-4)).all(), norm  # nothing beats the closed form
        assert (size <= optimum * 1.03).all(), (norm, (size / optimum).max())


def test_fmn_is_within_a_few_percent_of_fab_on_a_trained_cnn(digits_cnn, digits_test):
    x, y = digits_test[0][:64], digits_test[1][:64]
    keep = digits_cnn(x).argmax(1) == y
    x, y = x[keep], y[keep]
    torch.manual_seed(0)
    fmn = (FMN(1.0, norm="linf", steps=100).find(digits_cnn, x, y) - x).flatten(1).abs().amax(1)
    fab = (FAB(1.0, norm="linf", steps=100).find(digits_cnn, x, y) - x).flatten(1).abs().amax(1)
    assert (digits_cnn(x + 0).argmax(1) == y).all()
    # both are upper bounds on each image's true minimal linf distance; FMN's median within 10% of FAB's
    assert fmn.median() <= 1.10 * fab.median(), (fmn.median(), fab.median())
