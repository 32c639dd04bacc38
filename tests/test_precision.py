"""Reduced-precision attack iterations (--precision): 16-bit gradients, float32 verdicts, the same numbers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from trustkit.attacks import make_attack
from trustkit.attacks.base import input_gradient
from trustkit.attacks.precision import attack_precision, confirm_fooled, reduced
from trustkit.errors import InvalidArgumentError


def _dtypes_seen(model: nn.Module) -> tuple[list[torch.dtype], object]:
    seen: list[torch.dtype] = []
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return seen, conv.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))


def test_bf16_runs_the_gradient_pass_in_bf16_and_returns_float32(digits_cnn, digits_test):
    x, y = digits_test[0][:8], digits_test[1][:8]
    seen, handle = _dtypes_seen(digits_cnn)
    try:
        logits32, _, grad32 = input_gradient(digits_cnn, x, y)
        with attack_precision("bf16", "cpu"):
            assert reduced()
            logits16, loss16, grad16 = input_gradient(digits_cnn, x, y)
        assert not reduced()
    finally:
        handle.remove()
    assert seen == [torch.float32, torch.bfloat16]
    assert logits16.dtype == loss16.dtype == grad16.dtype == torch.float32
    assert (grad16.sign() == grad32.sign()).float().mean() > 0.9  # the direction survives 16 bits
    torch.testing.assert_close(logits16, logits32, atol=0.3, rtol=0.05)


def test_fp32_changes_nothing_and_bad_names_are_one_line(digits_cnn, digits_test):
    x, y = digits_test[0][:8], digits_test[1][:8]
    with attack_precision("fp32", "cpu"):
        assert not reduced()
        inside = input_gradient(digits_cnn, x, y)[2]
    assert torch.equal(inside, input_gradient(digits_cnn, x, y)[2])
    with pytest.raises(InvalidArgumentError, match="fp32, bf16, fp16"):
        with attack_precision("int8", "cpu"):
            pass


def test_confirm_fooled_keeps_only_what_fools_in_float32(digits_cnn, digits_test):
    """A candidate the 16-bit logits called fooled leaves the search only if float32 agrees."""
    x, y = digits_test[0][:20], digits_test[1][:20]
    with torch.no_grad():
        correct = digits_cnn(x).argmax(1) == y
    claimed = torch.ones(20, dtype=torch.bool)  # every image "fooled", as a wrong 16-bit verdict might say
    assert torch.equal(confirm_fooled(digits_cnn, x, y, claimed), claimed), "fp32 outside reduced precision"
    with attack_precision("bf16", "cpu"):
        confirmed = confirm_fooled(digits_cnn, x, y, claimed)
        assert torch.equal(confirmed, ~correct)
        wrong_class = (y + 1) % 10
        assert not confirm_fooled(digits_cnn, x, wrong_class, claimed, targeted=True)[correct].any()


@pytest.mark.parametrize("name", ["pgd", "apgd-ce"])
def test_bf16_attacks_reach_the_float32_robust_accuracy(name, digits_cnn, digits_test):
    """Judged in float32, a bf16 search is within half a point of the float32 one (digits cnn, 360 images)."""
    x, y = digits_test

    def robust(precision: str) -> float:
        torch.manual_seed(0)
        attack = make_attack(name, 0.1)
        with attack_precision(precision, "cpu"):
            x_adv = attack(digits_cnn, x, y)
        assert (x_adv - x).abs().max() <= 0.1 and 0 <= x_adv.min() and x_adv.max() <= 1
        with torch.no_grad():
            return (digits_cnn(x_adv).argmax(1) == y).float().mean().item()

    assert abs(robust("bf16") - robust("fp32")) <= 0.005


def test_bench_records_the_precision_and_keys_it(digits_cnn, tmp_path):
    from trustkit.engine import BenchConfig, run_bench

    runs = {p: run_bench(BenchConfig(attacks=["pgd"], eps=[0.1], n=60, precision=p, out=str(tmp_path / p)))
            for p in ("fp32", "bf16")}
    assert list(runs["bf16"].results["precision"]) == ["bf16"]
    assert list(runs["fp32"].results["precision"]) == ["fp32"]
    assert runs["bf16"].run_info["cells"]["computed"] == 1, "a bf16 cell is not the fp32 cell from the cache"
    with pytest.raises(InvalidArgumentError):
        run_bench(BenchConfig(attacks=["pgd"], precision="fp8", out=str(tmp_path / "bad")))
