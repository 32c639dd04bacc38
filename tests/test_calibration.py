"""Calibration and OOD detection: ECE against perfect and analytic cases, reliability bins against
scikit-learn, OOD scores and metrics on separable and identical cases, image conversion, and the study end to
end through ``trustkit bench calibration`` (cache hit on rerun, one-line errors)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from trustkit.calibration import (brier_score, calibration_summary, conversion_note, convert_images, energy,
                                  expected_calibration_error, max_softmax, maximum_calibration_error,
                                  negative_log_likelihood, noise_images, ood_metrics, reliability, softmax)
from trustkit.errors import ShapeMismatchError, TrustkitError

from tests.helpers import run_cli


def test_ece_of_a_perfectly_calibrated_model_is_about_zero():
    rng = np.random.default_rng(0)
    confidence = rng.random(200_000)
    correct = rng.random(200_000) < confidence  # right with probability equal to the confidence
    assert expected_calibration_error(confidence, correct) < 0.01
    assert maximum_calibration_error(confidence, correct) < 0.02


def test_ece_of_a_miscalibrated_model_equals_its_analytic_value():
    # every answer at 90% confidence, exactly 60% right: ECE = MCE = 0.3
    confidence, correct = np.full(1000, 0.9), np.arange(1000) < 600
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.3, abs=1e-12)
    assert maximum_calibration_error(confidence, correct) == pytest.approx(0.3, abs=1e-12)
    # confidence c ~ U(0, 1), right with probability c²: bin [a, b] has mean confidence (a + b)/2 and accuracy
    # (a² + ab + b²)/3, each bin holds 1/M of the images
    rng = np.random.default_rng(1)
    c = rng.random(200_000)
    edges = np.linspace(0, 1, 16)
    a, b = edges[:-1], edges[1:]
    analytic = np.mean(np.abs((a + b) / 2 - (a * a + a * b + b * b) / 3))
    assert expected_calibration_error(c, rng.random(c.size) < c ** 2, bins=15) == pytest.approx(analytic, abs=0.004)


def test_reliability_bins_match_scikit_learns_calibration_curve():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(2)
    confidence = np.r_[rng.beta(5, 1, 3000), np.linspace(0, 1, 16)]  # edges included: (a, b] as scikit-learn
    correct = rng.random(confidence.size) < confidence ** 1.5
    for bins in (5, 10, 15):
        table = reliability(confidence, correct, bins)
        accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=bins, strategy="uniform")
        filled = table.count > 0
        assert table.count.sum() == confidence.size and len(table.edges) == bins + 1
        np.testing.assert_allclose(table.accuracy[filled], accuracy, rtol=0, atol=1e-12)
        np.testing.assert_allclose(table.mean_confidence[filled], mean_confidence, rtol=0, atol=1e-12)
        assert np.isnan(table.accuracy[~filled]).all()


def test_nll_and_brier_have_their_closed_forms():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(50, 10)) * 3
    labels = rng.integers(0, 10, 50)
    p = softmax(logits)
    expected_nll = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(labels)).item()
    assert negative_log_likelihood(p, labels) == pytest.approx(expected_nll, rel=1e-9)
    assert brier_score(p, labels) == pytest.approx(((p - np.eye(10)[labels]) ** 2).sum(1).mean(), rel=1e-12)
    two = np.array([[0.8, 0.2], [0.3, 0.7]])  # two classes: the same unscaled formula, not halved
    assert brier_score(two, [0, 0]) == pytest.approx((0.04 + 0.04 + 0.49 + 0.49) / 2)
    summary = calibration_summary(np.eye(3)[[0, 1, 2, 0]], [0, 1, 2, 1])
    assert summary["accuracy"] == 0.75 and summary["ece"] == pytest.approx(0.25)
    assert summary["mean_confidence_wrong"] == 1.0


def test_ood_scores_separate_what_is_separable_and_not_what_is_identical():
    torch.manual_seed(0)
    peaked = torch.randn(2000, 10) + 12 * torch.nn.functional.one_hot(torch.randint(0, 10, (2000,)), 10)
    flat = torch.randn(2000, 10) * 0.1
    for score in (max_softmax, energy):
        found = ood_metrics(score(peaked).numpy(), score(flat).numpy())
        assert found["auroc"] == 1.0 and found["fpr_at_95_tpr"] == 0.0 and found["aupr"] == pytest.approx(1.0)
        same = ood_metrics(score(torch.randn(4000, 10)).numpy(), score(torch.randn(4000, 10)).numpy())
        assert abs(same["auroc"] - 0.5) < 0.03 and 0.9 < same["fpr_at_95_tpr"] < 1.0
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    assert energy(logits).item() == pytest.approx(torch.logsumexp(logits, 1).item())  # −E(x), higher = in
    assert max_softmax(logits).item() == pytest.approx(logits.softmax(1).max().item())
    # FPR at 95% TPR counts the OOD images above the threshold that keeps 95 of 100 in-distribution ones
    assert ood_metrics(np.arange(100.0), np.array([4.5, 50.0, 200.0]))["fpr_at_95_tpr"] == pytest.approx(2 / 3)


def test_convert_images_to_the_models_shape():
    colour = torch.rand(4, 3, 64, 64)
    grey = convert_images(colour, (1, 28, 28))
    assert grey.shape == (4, 1, 28, 28) and grey.min() >= 0 and grey.max() <= 1
    assert convert_images(torch.rand(2, 1, 28, 28), (3, 32, 32)).shape == (2, 3, 32, 32)
    flat = torch.full((1, 3, 32, 32), 0.4)
    torch.testing.assert_close(convert_images(flat, (1, 8, 8)), torch.full((1, 1, 8, 8), 0.4))  # luminance of grey
    same = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(convert_images(same, (1, 8, 8)), same)
    assert conversion_note((3, 64, 64), (1, 28, 28)) == "3×64×64 → 1×28×28 (luminance, antialiased resize)"
    with pytest.raises(ShapeMismatchError, match="channels"):
        convert_images(torch.rand(1, 4, 8, 8), (1, 8, 8))
    noise = noise_images(5, (1, 8, 8), seed=3)
    assert noise.shape == (5, 1, 8, 8) and torch.equal(noise, noise_images(5, (1, 8, 8), seed=3))


def test_bench_calibration_end_to_end_with_a_cache_hit(digits_cnn, tmp_path, capsys):
    args = ["-q", "bench", "calibration", "--model", "cnn", "--n", "80", "--ood", "noise", "--bins", "10",
            "-o", str(tmp_path)]
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "report:" in out and "ECE" in out
    run_dir = next(tmp_path.iterdir())
    results = pd.read_csv(run_dir / "results.csv")
    assert list(results["condition"]) == ["clean", "adversarial"] and (results["n"] == 80).all()
    clean, adversarial = results.set_index("condition").loc["clean"], results.set_index("condition").loc["adversarial"]
    assert adversarial["accuracy"] <= clean["accuracy"] and clean["accuracy"] > 0.8
    assert adversarial["eps"] == pytest.approx(0.2) and adversarial["ece"] > clean["ece"]
    bins = pd.read_csv(run_dir / "reliability.csv")
    assert len(bins) == 20 and (bins.groupby("condition")["count"].sum() == 80).all()
    ood = pd.read_csv(run_dir / "ood.csv")
    assert set(ood["score"]) == {"max_softmax", "energy"} and (ood["n_in"] == 80).all() and (ood["n_out"] == 80).all()
    assert (ood["auroc"] > 0.9).all()  # a digits cnn is far less sure of uniform noise
    html = (run_dir / "report.html").read_text()
    assert "Reliability diagrams" in html and "Out-of-distribution detection" in html
    assert html.count("data:image/png") >= 3 + 8  # three plots and the noise examples
    info = json.loads((run_dir / "run.json").read_text())
    assert info["kind"] == "calibration" and info["cells"]["total"] == 3
    assert {c["name"] for c in info["sanity_checks"]} >= {"overconfident under attack: cnn",
                                                    "expected calibration error: cnn clean",
                                                    "OOD detection: cnn vs noise (energy)"}
    assert run_cli(capsys, *args)[0] == 0  # the rerun reads every cell back
    second = sorted(tmp_path.iterdir())[-1]
    assert json.loads((second / "run.json").read_text())["cells"]["from_cache"] == 3
    pd.testing.assert_frame_equal(pd.read_csv(second / "ood.csv"), ood)


def test_the_section_is_a_fragment_for_combined_reports(digits_cnn, tmp_path):
    from trustkit.engine import run
    from trustkit.report.calibration import calibration_section
    from trustkit.studies.calibration import CalibrationConfig, calibration_study

    study = calibration_study(CalibrationConfig(models=("cnn",), n=40, ood=("noise",), device="cpu",
                                                out=str(tmp_path)))
    result = run(study, out=tmp_path, device="cpu")
    html = calibration_section(info=result.run_info, output=result.output, tables=result.tables,
                               checks=result.checks)
    assert "<html" not in html and 'id="calibration-reliability"' in html and "cnn vs noise" in html


@pytest.mark.parametrize("args, message", [
    (["--ood", "digits"], "is the in-distribution data set itself"),
    (["--ood", "mnsit"], "did you mean"),
    (["--dataset", "digts"], "did you mean"),
    (["--bins", "0"], "--bins must be at least 1"),
    (["--n-ood", "0"], "--n-ood must be at least 1"),
    (["--attack", "pgdd"], "did you mean"),
    (["--eps", "8/0"], "divides by zero"),
])
def test_bench_calibration_bad_input_is_one_line(args, message, tmp_path, capsys):
    code, out, err = run_cli(capsys, "bench", "calibration", *args, "-o", str(tmp_path))
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and errors[0] == err.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())


def test_the_study_refuses_a_string_for_its_ood_list():
    from trustkit.studies.calibration import CalibrationConfig, calibration_study

    with pytest.raises(TrustkitError, match="list of data set names"):
        calibration_study(CalibrationConfig(ood="noise"))


@pytest.mark.data
def test_a_converted_data_set_is_an_ood_set(digits_cnn, shared_data, tmp_path, capsys):
    """MNIST test images shrunk to digits' 8×8: near-OOD (digits of another kind), converted as the report says."""
    code, out, err = run_cli(capsys, "-q", "bench", "calibration", "--n", "60", "--n-ood", "60", "--ood",
                             "mnist,noise", "--data-root", str(shared_data), "-o", str(tmp_path))
    assert code == 0, err
    ood = pd.read_csv(next(tmp_path.iterdir()) / "ood.csv")
    assert list(dict.fromkeys(ood["ood_dataset"])) == ["mnist", "noise"] and (ood["n_out"] == 60).all()
    conversion = ood.set_index("ood_dataset").loc["mnist", "conversion"].iloc[0]
    assert conversion == "1×28×28 → 1×8×8 (antialiased resize)"
