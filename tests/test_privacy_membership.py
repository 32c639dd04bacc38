"""Membership inference (threshold attacks, ART black-box) and MIFace model inversion."""
from __future__ import annotations

import base64
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.models import build_model
from trustkit.privacy.membership import (ATTACKS, art_blackbox_scores, roc_figure, run_membership,
                                         tpr_at_fpr)
from trustkit.privacy.model_inversion import gallery_figure, run_model_inversion, start_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def assert_png_uri(uri: str) -> tuple[int, int]:
    from PIL import Image

    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    payload = base64.b64decode(uri[len(prefix):], validate=True)
    assert payload[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(payload)) as image:
        image.verify()
        return image.size


# --- tpr_at_fpr ------------------------------------------------------------------------------------------------

def test_tpr_at_fpr_exact_on_shifted_ranks() -> None:
    non_members = np.arange(1000.0)
    members = np.arange(1000.0) + 500  # threshold 900 lets 100 non-members (10%) and 600 members through
    assert tpr_at_fpr(members, non_members, 0.1) == pytest.approx(0.6)
    assert tpr_at_fpr(members, non_members, 0.001) == pytest.approx(0.501)  # threshold 999: one false positive
    assert tpr_at_fpr(members, non_members, 0.0) == pytest.approx(0.5)  # strictly above every non-member
    assert tpr_at_fpr(members, non_members, 0.0005) == pytest.approx(0.5)  # below 1/N: same as FPR 0
    assert tpr_at_fpr(members, non_members, 1.0) == 1.0


def test_tpr_at_fpr_matches_gaussian_analytic_curve() -> None:
    rng = np.random.default_rng(0)
    shift = 2.0
    non_members, members = rng.normal(0, 1, 200_000), rng.normal(shift, 1, 200_000)
    from statistics import NormalDist

    for fpr in (0.1, 0.01, 0.001):
        expected = 1 - NormalDist().cdf(NormalDist().inv_cdf(1 - fpr) - shift)  # 1 − Φ(Φ⁻¹(1−α) − μ)
        assert tpr_at_fpr(members, non_members, fpr) == pytest.approx(expected, abs=0.01)


def test_tpr_at_fpr_matches_sklearn_roc_curve_with_ties() -> None:
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(1)
    for trial in range(5):
        members = rng.integers(0, 30, 400) + trial  # few distinct values: many ties across both groups
        non_members = rng.integers(0, 30, 700)
        labels = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
        fpr_curve, tpr_curve, _ = roc_curve(labels, np.r_[members, non_members])
        for fpr in (0.0, 0.001, 0.01, 0.05, 0.2, 0.5):
            reference = tpr_curve[fpr_curve <= fpr + 1e-12].max()
            assert tpr_at_fpr(members, non_members, fpr) == pytest.approx(reference)


def test_tpr_at_fpr_rejects_bad_input() -> None:
    with pytest.raises(InvalidArgumentError):
        tpr_at_fpr(np.ones(3), np.ones(3), 1.5)
    with pytest.raises(InvalidArgumentError):
        tpr_at_fpr(np.array([np.nan]), np.ones(3), 0.1)
    with pytest.raises(InvalidArgumentError):
        tpr_at_fpr(np.array([]), np.ones(3), 0.1)


# --- membership inference on an overfit digits model ----------------------------------------------------------

@pytest.fixture(scope="module")
def overfit_digits():
    """An MLP fit for 300 full-batch Adam steps on 150 digits training images (train accuracy 100%)."""
    spec = get_spec("digits")
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    members, unused = train.subset(order[:150]), train.subset(order[150:])
    torch.manual_seed(0)
    model = build_model("mlp", spec)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = members.tensors()
    for _ in range(300):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval(), members, unused, test


def test_overfit_model_leaks_membership(overfit_digits) -> None:
    model, members, _, test = overfit_digits
    result = run_membership(model, members, test, n=150, seed=0)
    rows = {row["attack"]: row for row in result.rows}
    assert list(rows) == list(ATTACKS)
    loss = rows["loss-threshold"]
    assert loss["train_accuracy"] == 1.0 and loss["gap"] > 0.05
    assert loss["members"] == loss["non_members"] == 150
    assert loss["auc"] > 0.6  # chance is 0.5; the null spread at n=150 is ±0.03
    assert rows["confidence-threshold"]["auc"] > 0.6
    assert rows["art-blackbox"]["auc"] > 0.55
    assert rows["art-blackbox"]["members"] == rows["art-blackbox"]["non_members"] == 75  # the evaluation half only
    for row in result.rows:
        assert 0.0 <= row["tpr_at_0_1pct_fpr"] <= row["tpr_at_1pct_fpr"] <= 1.0
        fpr, tpr = result.roc[row["attack"]]
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
        assert np.trapezoid(tpr, fpr) == pytest.approx(row["auc"], abs=1e-9)  # the ROC is the one the AUC is of


def test_loss_threshold_auc_is_the_mann_whitney_statistic(overfit_digits) -> None:
    model, members, _, test = overfit_digits
    result = run_membership(model, members, test, n=60, seed=3)
    x_in, y_in = members.tensors(torch.randperm(len(members), generator=torch.Generator().manual_seed(3))[:60].sort().values)
    with torch.no_grad():
        loss_in = F.cross_entropy(model(x_in).double(), y_in, reduction="none")
    # recompute the non-member draw the same way run_membership does (second draw of the same generator)
    generator = torch.Generator().manual_seed(3)
    torch.randperm(len(members), generator=generator)
    x_out, y_out = test.tensors(torch.randperm(len(test), generator=generator)[:60].sort().values)
    with torch.no_grad():
        loss_out = F.cross_entropy(model(x_out).double(), y_out, reduction="none")
    wins = (loss_in[:, None] < loss_out[None, :]).double() + 0.5 * (loss_in[:, None] == loss_out[None, :]).double()
    assert result.rows[0]["auc"] == pytest.approx(wins.mean().item(), abs=1e-9)


def test_same_distribution_samples_give_chance_auc(overfit_digits) -> None:
    model, _, unused, _ = overfit_digits  # two disjoint samples the model never saw: nothing to infer
    half = len(unused) // 2
    first, second = unused.subset(torch.arange(half)), unused.subset(torch.arange(half, len(unused)))
    result = run_membership(model, first, second, n=500, seed=0)
    for row in result.rows:
        assert abs(row["auc"] - 0.5) < 0.07, row  # null standard deviation ≈ 0.018 (threshold), 0.026 (ART half)
        assert abs(row["gap"]) < 0.06


def test_art_attack_is_fit_and_scored_on_disjoint_halves(monkeypatch) -> None:
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox

    seen: dict[str, list[np.ndarray]] = {"fit": [], "infer": []}
    original_fit, original_infer = MembershipInferenceBlackBox.fit, MembershipInferenceBlackBox.infer

    def spy_fit(self, x=None, y=None, test_x=None, test_y=None, **kwargs):
        seen["fit"] += [x, test_x]
        return original_fit(self, x, y, test_x, test_y, **kwargs)

    def spy_infer(self, x, y=None, **kwargs):
        seen["infer"].append(x)
        return original_infer(self, x, y, **kwargs)

    monkeypatch.setattr(MembershipInferenceBlackBox, "fit", spy_fit)
    monkeypatch.setattr(MembershipInferenceBlackBox, "infer", spy_infer)
    torch.manual_seed(0)
    model = build_model("softmax", get_spec("digits")).eval()
    x = torch.rand(41, 1, 8, 8)  # distinct random images: a shared row would mean a shared image
    y = torch.randint(0, 10, (41,))
    out = art_blackbox_scores(model, x[:21], y[:21], x[21:], y[21:], nb_classes=10, seed=0)
    assert set(out["train_members"]).isdisjoint(out["eval_members"])
    assert set(out["train_non_members"]).isdisjoint(out["eval_non_members"])
    assert sorted([*out["train_members"], *out["eval_members"]]) == list(range(21))
    assert len(out["member_scores"]) == len(out["eval_members"]) and len(out["non_member_scores"]) == 10
    fitted = {row.tobytes() for batch in seen["fit"] for row in batch}
    scored = [row.tobytes() for batch in seen["infer"] for row in batch]
    assert len(fitted) == 20 and len(scored) == 21
    assert fitted.isdisjoint(scored)
    assert np.all((out["member_scores"] >= 0) & (out["member_scores"] <= 1))


def test_membership_is_reproducible_and_roc_figure_is_png(overfit_digits) -> None:
    model, members, _, test = overfit_digits
    first = run_membership(model, members, test, n=40, seed=5)
    second = run_membership(model, members, test, n=40, seed=5)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(first.rows) == strip(second.rows)
    width, height = assert_png_uri(roc_figure(first))
    assert width > 300 and height > 200
    with pytest.raises(InvalidArgumentError):
        run_membership(model, members, test, n=1)
    with pytest.raises(InvalidArgumentError):
        run_membership(model, members, test, n=10, art_attack_model="svm")


# --- MIFace model inversion -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_linear():
    """Multinomial logistic regression fit on all digits training images (full-batch Adam, ~1 s)."""
    spec = get_spec("digits")
    x, y = load_dataset("digits", "train").tensors()
    torch.manual_seed(0)
    model = build_model("softmax", spec)
    optimizer = torch.optim.Adam(model.parameters(), 0.05)
    for _ in range(200):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval(), spec, x, y


def test_miface_representatives_are_confident_and_in_range(digits_linear) -> None:
    model, spec, x, y = digits_linear
    classes = [0, 3, 7]
    result = run_model_inversion(model, spec, classes=classes, max_iter=150, threshold=1.0)
    assert result.classes == classes and result.images.shape == (3, *spec.shape)
    assert result.images.dtype == torch.float32
    assert result.images.min() >= 0 and result.images.max() <= 1
    with torch.no_grad():
        probabilities = torch.softmax(model(result.images), 1)
        start = torch.softmax(model(start_image(spec)[None]), 1)[0]
    assert probabilities.argmax(1).tolist() == classes
    for k, row in enumerate(result.rows):
        assert row["class"] == classes[k] and row["class_name"] == spec.class_names[classes[k]]
        assert row["target_confidence"] == pytest.approx(probabilities[k, classes[k]].item(), abs=1e-5)
        assert row["target_confidence"] > 0.95 > start[classes[k]].item()
        assert row["iterations"] == 150 and row["seconds"] > 0  # threshold 1.0 runs every step
    means = torch.stack([x[y == c].mean(0) for c in classes])
    # the representative correlates with the class's own mean image more than with the other classes' means
    flat = (result.images - result.images.mean((1, 2, 3), keepdim=True)).flatten(1)
    reference = (means - means.mean((1, 2, 3), keepdim=True)).flatten(1)
    similarity = F.normalize(flat, dim=1) @ F.normalize(reference, dim=1).T
    assert similarity.argmax(1).tolist() == [0, 1, 2]
    width, height = assert_png_uri(gallery_figure(result, means))
    assert height > 100 and width > 200
    assert_png_uri(gallery_figure(result))


def test_miface_start_image_and_errors(digits_linear) -> None:
    model, spec, _, _ = digits_linear
    start = start_image(spec)
    assert start.shape == spec.shape and torch.allclose(start, torch.full(spec.shape, spec.mean[0]))
    with pytest.raises(InvalidArgumentError):
        run_model_inversion(model, spec, classes=[10])
    with pytest.raises(InvalidArgumentError):
        run_model_inversion(model, spec, classes=[1], max_iter=0)
    result = run_model_inversion(model, spec, classes=[1], max_iter=3, threshold=1.0)
    with pytest.raises(InvalidArgumentError):
        gallery_figure(result, torch.zeros(2, *spec.shape))


# --- real data (skips without ../shared/data) -----------------------------------------------------------------

def test_olivetti_membership_uses_the_whole_small_test_split(shared_data) -> None:
    from trustkit import load_model  # trains the zoo mlp if the store lacks it (resolve_model would not)

    train = load_dataset("olivetti", "train", data_root=shared_data)
    test = load_dataset("olivetti", "test", data_root=shared_data)
    model = load_model("mlp", "olivetti", data_root=shared_data, device="cpu")
    result = run_membership(model, train, test, n=500, seed=0)
    rows = {row["attack"]: row for row in result.rows}
    assert rows["loss-threshold"]["members"] == rows["loss-threshold"]["non_members"] == 80
    assert rows["art-blackbox"]["members"] == rows["art-blackbox"]["non_members"] == 40
    assert rows["loss-threshold"]["train_accuracy"] == 1.0
    assert rows["loss-threshold"]["auc"] > 0.6
    assert not math.isnan(rows["art-blackbox"]["auc"])
