import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trustkit.attacks import ThreatModel, format_eps, parse_eps
from trustkit.errors import InvalidArgumentError


@pytest.mark.parametrize("text, value", [("0.3", 0.3), ("8/255", 8 / 255), ("1e-2", 0.01), (" 2 / 255 ", 2 / 255),
                                         (0.25, 0.25), ("0", 0.0), (".5", 0.5)])
def test_parse_eps(text, value):
    assert math.isclose(parse_eps(text), value)


@pytest.mark.parametrize("text", ["-0.1", "abc", "8/0", "nan", "1/2/3", ""])
def test_parse_eps_rejects(text):
    with pytest.raises(InvalidArgumentError):
        parse_eps(text)


def test_format_eps():
    assert format_eps(8 / 255) == "8/255"
    assert format_eps(0.3) == "0.3"
    assert format_eps(0.05) == "0.05"


def test_threat_model_rejects_bad_eps_and_norm():
    with pytest.raises(InvalidArgumentError, match="exceeds 1"):
        ThreatModel("linf", 1.5)
    with pytest.raises(InvalidArgumentError):
        ThreatModel("l3", 0.1)
    ThreatModel("l2", 3.0)  # l2 budgets above 1 are legitimate


@settings(max_examples=40, deadline=None)
@given(eps=st.floats(0, 1), norm=st.sampled_from(["linf", "l2"]), seed=st.integers(0, 2**16), scale=st.floats(0.01, 5))
def test_projection_lands_inside_ball_and_box(eps, norm, seed, scale):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(16, 3, 8, 8, generator=generator)
    wild = x + scale * torch.randn(16, 3, 8, 8, generator=generator)
    threat = ThreatModel(norm, eps)
    out = threat.project_strict(wild, x)
    delta = (out - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= eps).all())
    assert out.min() >= 0 and out.max() <= 1


def test_projection_keeps_points_already_inside():
    x = torch.full((2, 1, 4, 4), 0.5)
    inside = x + 0.01
    assert torch.allclose(ThreatModel("linf", 0.1).project(inside, x), inside)
    assert torch.allclose(ThreatModel("l2", 1.0).project(inside, x), inside, atol=1e-6)
