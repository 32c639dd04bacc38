"""Input-transformation defenses: transforms, BPDA/EOT views, naive vs adaptive evaluation in bench."""
import pandas as pd
import pytest
import torch

from trustkit.attacks import PGD
from trustkit.defenses import DEFENSES, AdaptiveView, DefendedModel, make_defense
from trustkit.errors import InvalidArgumentError


def test_registry_and_parameters():
    assert {"jpeg", "bitdepth", "median", "noise"} <= set(DEFENSES)
    assert make_defense("jpeg:quality=50").describe() == "jpeg:quality=50"
    assert make_defense("bitdepth").describe() == "bitdepth:bits=4"
    with pytest.raises(InvalidArgumentError, match="quality"):
        make_defense("jpeg:quality=0")
    with pytest.raises(InvalidArgumentError, match="takes quality"):
        make_defense("jpeg:bits=3")
    with pytest.raises(InvalidArgumentError, match="odd"):
        make_defense("median:size=2")


def test_bitdepth_quantises_exactly():
    x = torch.rand(2, 3, 8, 8)
    out = make_defense("bitdepth:bits=1").transform(x)
    assert torch.equal(out, (x > 0.5).float())


def test_median_filter_matches_a_reference():
    x = torch.rand(1, 1, 6, 6)
    out = make_defense("median").transform(x)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")[0, 0]
    for i in range(6):
        for j in range(6):
            assert out[0, 0, i, j] == padded[i:i + 3, j:j + 3].flatten().median()


def test_jpeg_round_trip_is_close_and_in_range():
    x = torch.rand(2, 3, 16, 16) * 0.2 + 0.4
    out = make_defense("jpeg:quality=95").transform(x)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    assert (out - x).abs().mean() < 0.05


def test_bpda_passes_identity_gradient_through_quantisation(digits_cnn, digits_test):
    x = digits_test[0][:8]
    defense = make_defense("bitdepth:bits=2")
    deployed, view = DefendedModel(digits_cnn, defense), AdaptiveView(digits_cnn, defense)
    with torch.no_grad():
        assert torch.allclose(deployed(x), view(x))  # same forward pass
    x1 = x.clone().requires_grad_(True)
    view(x1).sum().backward()
    x2 = defense.transform(x).clone().requires_grad_(True)
    digits_cnn(x2).sum().backward()
    assert torch.allclose(x1.grad, x2.grad)  # the gradient at the transformed point, passed straight through


def test_eot_view_averages_randomness(digits_cnn, digits_test):
    x = digits_test[0][:16]
    view = AdaptiveView(digits_cnn, make_defense("noise:sigma=0.3"), samples=64)
    torch.manual_seed(0)
    first = view(x)
    torch.manual_seed(1)
    second = view(x)
    single = DefendedModel(digits_cnn, make_defense("noise:sigma=0.3"))
    spread_eot = (first.softmax(1) - second.softmax(1)).abs().mean()
    spread_one = (single(x).softmax(1) - single(x).softmax(1)).abs().mean()
    assert spread_eot < spread_one / 2  # averaging 64 draws shrinks the noise


def test_adaptive_breaks_what_naive_misses(digits_cnn, digits_test):
    """Attacking the deployed bit-depth model directly sees zero gradients; BPDA does not."""
    x, y = digits_test
    defense = make_defense("bitdepth:bits=2")
    deployed = DefendedModel(digits_cnn, defense)
    torch.manual_seed(0)
    direct = PGD(0.2, steps=10)(deployed, x, y)  # gradient masked: barely moves
    torch.manual_seed(0)
    adaptive = PGD(0.2, steps=10)(AdaptiveView(digits_cnn, defense), x, y)
    with torch.no_grad():
        acc_direct = (deployed(direct).argmax(1) == y).float().mean()
        acc_adaptive = (deployed(adaptive).argmax(1) == y).float().mean()
    assert acc_adaptive < acc_direct - 0.3


def test_bench_with_defenses_reports_naive_and_adaptive(tmp_path, digits_cnn):
    from trustkit.engine import BenchConfig, run_bench

    result = run_bench(BenchConfig(attacks=["pgd"], eps=[0.2], n=60, out=str(tmp_path), defenses=["none", "bitdepth:bits=2", "noise"],
                                   attack_params={"steps": 10}))
    rows = result.results.set_index(["defense", "evaluation"])["robust_accuracy"]
    assert set(rows.index) == {("none", "standard"), ("bitdepth:bits=2", "naive"), ("bitdepth:bits=2", "adaptive (bpda)"),
                               ("noise:sigma=0.1", "naive"), ("noise:sigma=0.1", "adaptive (eot)")}
    assert rows[("bitdepth:bits=2", "adaptive (bpda)")] <= rows[("bitdepth:bits=2", "naive")] + 1 / 60
    flagged = {c.anchor for c in result.checks if c.status == "flag"}
    assert "deterministic-model" in flagged  # the noise defense is random, and the report says so
    html = result.report.read_text()
    assert "Only the adaptive numbers measure robustness" in html
    per_class = pd.read_csv(result.run_dir / "per_class.csv")
    assert set(per_class["evaluation"]) == {"standard", "naive", "adaptive (bpda)", "adaptive (eot)"}
