"""trustkit explain: Captum attributions against analytic results, deletion/insertion curves, the
randomisation test (it must flag a method that ignores the weights), and the study end to end."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from trustkit.data import get_spec
from trustkit.errors import InvalidArgumentError, TrustkitError
from trustkit.explain.faithfulness import curves, random_maps
from trustkit.explain.methods import ATTRIBUTION_METHODS, attribute, heatmap, method_options
from trustkit.explain.randomization import cascading_randomization, fails_randomization, spearman
from trustkit.models import build_model

from tests.helpers import run_cli


@pytest.fixture(scope="module")
def linear():
    """A digits softmax model (logits = W·(x − μ)/σ + b) with seeded random weights: every attribution of
    it has a closed form."""
    torch.manual_seed(0)
    return build_model("softmax", get_spec("digits")).eval()


def _weights(model: nn.Module) -> torch.Tensor:
    """Effective input weights K×(C·H·W) of the linear model on [0, 1] pixels: W / σ."""
    layer = next(m for m in model.modules() if isinstance(m, nn.Linear))
    std = get_spec("digits").std[0]
    return layer.weight.detach() / std


def test_every_method_gives_one_attribution_per_pixel(digits_cnn, digits_test):
    x, y = digits_test[0][:6], digits_test[1][:6]
    for name in ATTRIBUTION_METHODS.names():
        found = attribute(digits_cnn, x, y, name)
        assert found.shape == x.shape and torch.isfinite(found).all(), name
        assert heatmap(found).shape == (6, 8, 8) and (heatmap(found) >= 0).all()
    assert all(p.requires_grad for p in digits_cnn.parameters()), "weights must get their requires_grad back"


def test_gradient_and_integrated_gradients_match_the_closed_form_of_a_linear_model(linear, digits_test):
    x, y = digits_test[0][:8], digits_test[1][:8]
    w = _weights(linear)[y].reshape(x.shape)
    torch.testing.assert_close(attribute(linear, x, y, "grad"), w.abs(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(attribute(linear, x, y, "input-x-grad"), x * w, rtol=1e-5, atol=1e-6)
    # for a linear score the path integral is exact: IG = (x − 0) ⊙ w, whatever the number of steps
    torch.testing.assert_close(attribute(linear, x, y, "integrated-gradients"), x * w, rtol=1e-4, atol=1e-5)


def test_integrated_gradients_sum_to_the_logit_difference(digits_cnn, digits_test):
    """Completeness (Sundararajan et al. 2017) on a non-linear model: Σ IG = F_y(x) − F_y(black)."""
    x, y = digits_test[0][:8], digits_test[1][:8]
    ig = attribute(digits_cnn, x, y, "integrated-gradients", options={"steps": 64})
    with torch.no_grad():
        difference = (digits_cnn(x) - digits_cnn(torch.zeros_like(x))).gather(1, y[:, None])[:, 0]
    assert (ig.flatten(1).sum(1) - difference).abs().max() < 0.02 * difference.abs().mean()


def test_method_options_are_typed_and_checked():
    smoothgrad = ATTRIBUTION_METHODS.get("smoothgrad")
    assert method_options(smoothgrad, {"samples": 4}) == {"samples": 4, "noise": 0.15}
    for bad in ({"samples": 1.5}, {"samples": 0}, {"noise": float("nan")}, {"noise": -0.1}, {"sample": 4}):
        with pytest.raises(InvalidArgumentError):
            method_options(smoothgrad, bad)
    with pytest.raises(TrustkitError, match="did you mean"):
        ATTRIBUTION_METHODS.get("gradcm")


def test_deletion_curve_starts_at_the_image_and_ends_at_black(linear, digits_test):
    x, y = digits_test[0][:10], digits_test[1][:10]
    maps = heatmap(attribute(linear, x, y, "input-x-grad"))
    found = curves(linear, x, y, maps, "deletion", steps=8)
    with torch.no_grad():
        start = linear(x).softmax(1).gather(1, y[:, None]).mean()
        end = linear(torch.zeros_like(x)).softmax(1).gather(1, y[:, None]).mean()
    assert found.fractions[0] == 0 and found.fractions[-1] == 1 and len(found.fractions) == 9
    assert found.mean_probability[0] == pytest.approx(float(start), abs=1e-6)
    assert found.mean_probability[-1] == pytest.approx(float(end), abs=1e-6)


def test_signed_evidence_deletes_faster_than_a_random_order(digits_softmax, digits_test):
    """For a linear model, removing the pixels with the largest positive contribution x·w first is the
    greedy optimum of deletion: it must beat a random order by far."""
    x, y = digits_test[0][:40], digits_test[1][:40]
    signed = (attribute(digits_softmax, x, y, "input-x-grad")).sum(1)
    best = curves(digits_softmax, x, y, signed, "deletion").mean_auc
    chance = curves(digits_softmax, x, y, random_maps(40, 8, 8, seed=0), "deletion").mean_auc
    assert best < 0.5 * chance


def test_randomization_flags_a_method_that_ignores_the_weights(digits_cnn, digits_test):
    """An edge detector of the input explains the image, not the model: its maps survive every layer's
    randomisation and the test must flag it; the gradient does not survive and passes."""
    x, y = digits_test[0][:12], digits_test[1][:12]

    def edges(model: nn.Module) -> torch.Tensor:  # Sobel magnitude of the image; never looks at the model
        kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3)
        gx = nn.functional.conv2d(x, kx, padding=1)
        gy = nn.functional.conv2d(x, kx.transpose(2, 3), padding=1)
        return (gx ** 2 + gy ** 2).sqrt()[:, 0]

    edge_steps = cascading_randomization(digits_cnn, x, y, edges, seed=0)
    assert fails_randomization(edge_steps)
    assert edge_steps[-1].rank_correlation == pytest.approx(1.0)
    grad_steps = cascading_randomization(digits_cnn, x, y, lambda m: heatmap(attribute(m, x, y, "grad")), seed=0)
    assert not fails_randomization(grad_steps)
    assert grad_steps[0].rank_correlation == 1.0 and grad_steps[-1].rank_correlation < 0.5
    assert len(grad_steps) == 1 + 4, "the cnn has four layers with weights, one block each"
    before = [p.detach().clone() for p in digits_cnn.parameters()]
    cascading_randomization(digits_cnn, x, y, edges, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(before, digits_cnn.parameters())), "the original stays trained"


def test_spearman_matches_scipy_and_treats_constant_maps_as_unranked():
    from scipy.stats import spearmanr

    torch.manual_seed(1)
    a, b = torch.rand(3, 4, 4), torch.rand(3, 4, 4)
    expected = [spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(3)]
    torch.testing.assert_close(spearman(a, b), torch.tensor(expected, dtype=torch.float32))
    assert spearman(a[:1], torch.zeros(1, 4, 4)).item() == 0.0


def test_explain_cli_writes_a_report_and_flags_what_it_should(digits_cnn, tmp_path, capsys):
    args = ["-q", "explain", "--method", "grad,integrated-gradients,gradcam", "--images-per-class", "2",
            "--randomization-n", "8", "-o", str(tmp_path)]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    run_dir = next(tmp_path.iterdir())
    info = json.loads((run_dir / "run.json").read_text())
    import pandas as pd

    results = pd.read_csv(run_dir / "results.csv")
    assert list(results["method"]) == ["grad", "integrated-gradients", "gradcam"]
    assert (results["n"] == 20).all() and (results["deletion_auc"] < results["random_deletion_auc"]).all()
    assert results.set_index("method").loc["integrated-gradients", "completeness_error"] < 0.05
    assert results.set_index("method").loc["grad", "randomization"] == "pass"
    randomization = pd.read_csv(run_dir / "randomization.csv")
    assert set(randomization["method"]) == set(results["method"]) and (randomization["step"].max() == 4)
    curves_csv = pd.read_csv(run_dir / "curves.csv")
    assert "random order" in set(curves_csv["method"])
    html = (run_dir / "report.html").read_text()
    assert "Randomisation test" in html and "Clean vs adversarial" in html and html.count("data:image/png") > 40
    assert info["kind"] == "explain" and info["cells"]["total"] == 3
    assert run_cli(capsys, *args)[0] == 0  # the second run reads every cell back
    second = sorted(tmp_path.iterdir())[-1]
    assert json.loads((second / "run.json").read_text())["cells"]["from_cache"] == 3


@pytest.mark.parametrize("args, message", [
    (["--method", "gradcm"], "did you mean"),
    (["-p", "smoothgrad.samples=1.5"], "integer"),
    (["-p", "samples=4"], "METHOD.KEY=VALUE"),
    (["--randomization-n", "-1"], "randomization-n"),
    (["--method", "grad", "--layer", "conv2"], "add --method gradcam"),
    (["--method", "grad", "-p", "smoothgrad.samples=4"], "not among the methods"),
    (["--method", "gradcam", "--layer", "conv9"], "unknown layer"),
])
def test_explain_bad_input_is_one_line(args, message, tmp_path, capsys, digits_cnn):
    code, out, err = run_cli(capsys, "explain", *args, "-o", str(tmp_path))
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and errors[0] == err.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())


def test_list_methods_names_every_attribution_method(capsys):
    code, out, _ = run_cli(capsys, "list", "methods")
    assert code == 0
    assert all(name in out for name in ATTRIBUTION_METHODS.names())


def test_a_method_cell_is_keyed_by_its_own_options_only(digits_cnn, tmp_path, capsys):
    """Adding a method, or options of another method, leaves a finished cell in the cache; the adversarial
    images are made in batches (--batch-size smaller than the sample) by bench's attack loop."""
    base = ["-q", "explain", "--images-per-class", "1", "--randomization-n", "2", "--batch-size", "7"]
    assert run_cli(capsys, *base, "--method", "grad", "-o", str(tmp_path / "a"))[0] == 0
    assert run_cli(capsys, *base, "--method", "grad,smoothgrad", "-p", "smoothgrad.samples=4",
                   "-o", str(tmp_path / "b"))[0] == 0
    info = json.loads((next((tmp_path / "b").iterdir()) / "run.json").read_text())
    assert info["cells"] == {"total": 2, "computed": 1, "from_cache": 1, "failed": 0}
