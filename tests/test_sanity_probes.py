"""Model probes flag what they should: probabilities, randomness, vanishing gradients, failed unbounded attacks."""
import torch
from torch import nn

from trustkit.sanity import probe_model


class Softmaxed(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).softmax(1)


class Noisy(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x + 0.05 * torch.randn_like(x))


class Quantised(nn.Module):
    """Rounds pixels to 1 bit: the gradient is zero almost everywhere (classic gradient masking)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x))


def statuses(model, x, y):
    return {c.anchor: c.status for c in probe_model(model, x, y, torch.device("cpu"))}


def test_healthy_model_passes_every_probe(digits_cnn, digits_test):
    assert set(statuses(digits_cnn, *digits_test).values()) == {"pass"}


def test_probability_outputs_are_flagged(digits_cnn, digits_test):
    assert statuses(Softmaxed(digits_cnn), *digits_test)["logits-not-probabilities"] == "flag"


def test_random_model_is_flagged(digits_cnn, digits_test):
    assert statuses(Noisy(digits_cnn), *digits_test)["deterministic-model"] == "flag"


def test_masked_gradients_are_flagged(digits_cnn, digits_test):
    found = statuses(Quantised(digits_cnn), *digits_test)
    assert found["vanishing-gradients"] == "flag"
    assert found["unbounded-attack"] == "flag"


def test_bench_report_shows_probe_flags(tmp_path, digits_cnn, digits_test):
    from trustkit.engine import BenchConfig, run_bench

    torch.manual_seed(0)
    scripted = tmp_path / "quantised.pt"
    torch.jit.script(Quantised(digits_cnn)).save(str(scripted))
    result = run_bench(BenchConfig(attacks=["fgsm", "pgd"], model=str(scripted), eps=[0.1, 0.3], n=60,
                                   out=str(tmp_path / "r"), trust_code=True))
    flagged = {c.anchor for c in result.checks if c.status == "flag"}
    assert {"vanishing-gradients", "unbounded-attack"} <= flagged
    html = result.report.read_text()
    assert "flagged" in html and "unbounded-attack" in html


class _PurifiesWithGradients(torch.nn.Module):
    """A dynamic defense: one gradient step on the input inside every forward pass, taken with
    ``torch.autograd.grad`` or, with ``use_backward``, with ``Tensor.backward``."""

    def __init__(self, model: torch.nn.Module, use_backward: bool = False) -> None:
        super().__init__()
        self.model, self.use_backward = model, use_backward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            probe = x.detach().requires_grad_(True)
            loss = self.model(probe).logsumexp(1).sum()
            if self.use_backward:
                loss.backward()
                grad = probe.grad
            else:
                (grad,) = torch.autograd.grad(loss, probe)
        return self.model((x - 0.01 * grad.sign()).clamp(0, 1))


def test_autograd_inside_forward_is_flagged_as_autoattack_does(digits_softmax, digits_test):
    from trustkit.sanity import autograd_calls_in_forward, probe_autograd_in_forward

    x, _ = digits_test
    assert autograd_calls_in_forward(digits_softmax, x[:2]) == []
    assert probe_autograd_in_forward(digits_softmax, x)[0].status == "pass"
    dynamic = _PurifiesWithGradients(digits_softmax)
    assert autograd_calls_in_forward(dynamic, x[:2]) == ["torch.autograd.grad"]
    check = probe_autograd_in_forward(dynamic, x)[0]
    assert check.status == "flag" and check.anchor == "autograd-in-forward"


def test_autograd_probe_sees_backward_and_leaves_a_running_profiler_alone(digits_softmax, digits_test):
    """The probe used to swap sys.setprofile and crashed under cProfile (a Profile object cannot be put back
    with sys.setprofile); the profiler must keep running and the probe still find Tensor.backward."""
    import cProfile
    import sys

    from trustkit.sanity import autograd_calls_in_forward

    x, _ = digits_test
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        found = autograd_calls_in_forward(_PurifiesWithGradients(digits_softmax, use_backward=True), x[:2])
        still_profiling = sys.getprofile() is profiler
    finally:
        profiler.disable()
    assert found == ["Tensor.backward"]
    assert still_profiling
