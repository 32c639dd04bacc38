"""Membership inference: was this image in the model's training set?

Three attackers score every candidate image; a higher score means "more likely a member":

- ``loss-threshold`` (Yeom et al. 2018): score = −cross-entropy loss of the true label. Training points
  were fit, so their loss tends to be lower. Needs the label and the model's probabilities.
- ``confidence-threshold`` (Salem et al. 2019, "top-1 confidence"): score = the largest softmax probability,
  no label needed. (The true-class probability would be exp(−loss), a monotone function of the loss, so it
  ranks every image exactly as ``loss-threshold`` does and would add nothing.)
- ``art-blackbox``: ART's ``MembershipInferenceBlackBox`` (Shokri et al. 2017 style learned attack on the
  softmax vector plus the one-hot label), with a random-forest (default) or neural-network attack model.
  It is *trained* on one half of the members and non-members and *evaluated* on the other half only, so
  no image it is scored on was seen while fitting the attack.

Members are a seeded sample of ``train_set`` (images the model was fit on), non-members an equally large
seeded sample of ``test_set`` (images it never saw), so the two classes are balanced and chance is
AUC 0.5. Threshold attacks need no fitting and are scored on all 2·n images.

How to read the numbers: AUC summarises the whole ROC, but an attack that identifies a *few* members with
near certainty is the real privacy risk, and it can hide behind an average AUC (Carlini et al. 2022,
"Membership Inference Attacks From First Principles"). So each row also carries the TPR at 1% and 0.1%
FPR, read off the empirical ROC by :func:`tpr_at_fpr`. With N non-members the smallest non-zero FPR is 1/N:
below it, the TPR reported is the one at FPR = 0 (the members scored above every non-member).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trustkit.data.base import ImageDataset
from trustkit.errors import InvalidArgumentError
from trustkit.models.inference import predict_logits
from trustkit.runtime import log, select_device

ATTACKS = ("loss-threshold", "confidence-threshold", "art-blackbox")
ART_ATTACK_MODELS = ("rf", "nn")
LOW_FPRS = (0.01, 0.001)  # the operating points every row reports (fractions, not %)


@dataclass
class MembershipResult:
    """Result of :func:`run_membership`.

    ``rows``: one dict per attack with ``attack``, ``auc`` (area under the ROC, 0.5 = chance),
    ``tpr_at_1pct_fpr`` / ``tpr_at_0_1pct_fpr`` (fractions in [0, 1]), ``train_accuracy`` /
    ``test_accuracy`` (the model's top-1 accuracy on the member / non-member sample, fractions), ``gap``
    (train − test accuracy), ``members`` / ``non_members`` (how many images the attack was scored on) and
    ``seconds`` (wall time of that attack, excluding the shared forward pass for the threshold attacks).
    ``roc``: attack -> ``(fpr, tpr)`` arrays of its empirical ROC (non-decreasing, from (0, ·) to (1, 1)).
    """

    rows: list[dict[str, object]] = field(default_factory=list)
    roc: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


class _Float32Probabilities(nn.Module):
    """``model`` with a softmax on top and float32 inputs: ART's inference attacks expect probabilities
    (MIFace's cost is 1 − p_class, ``MembershipInferenceBlackBox`` reads ``predict`` as the softmax vector),
    and some ART code paths hand the model float64 arrays."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x.float()), dim=1)


class _ProbabilityNLL(nn.Module):
    """Cross-entropy on a probability output (so the ART estimator's ``compute_loss`` stays correct)."""

    def forward(self, probabilities: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(probabilities.clamp_min(1e-12).log(), target)


def probability_classifier(model: nn.Module, input_shape: tuple[int, ...], nb_classes: int):  # noqa: ANN201 - ART type
    """Wrap ``model`` ([0, 1] inputs, logits out) as an ART ``PyTorchClassifier`` whose output is the softmax.

    Same wrapping as :func:`trustkit.attacks.art_bridge.art_classifier` (clip values [0, 1], the model's own
    device) but with probabilities out, which ART's inference attacks assume.
    """
    from art.estimators.classification import PyTorchClassifier

    device = next(iter(model.parameters()), torch.empty(0)).device
    return PyTorchClassifier(model=_Float32Probabilities(model), loss=_ProbabilityNLL(), input_shape=tuple(input_shape),
                             nb_classes=nb_classes, clip_values=(0.0, 1.0),
                             device_type="gpu" if device.type == "cuda" else "cpu")


def tpr_at_fpr(scores_members: np.ndarray, scores_non_members: np.ndarray, fpr: float) -> float:
    """The largest true-positive rate the score achieves at a false-positive rate of at most ``fpr``.

    A threshold t calls an image a member when its score is ≥ t. Over every t, FPR(t) is the fraction of
    non-member scores ≥ t and TPR(t) the fraction of member scores ≥ t; the answer is max TPR(t) subject to
    FPR(t) ≤ ``fpr`` (a fraction, e.g. 0.01 for 1%). Exact on the empirical ROC: no interpolation between
    ROC points (which would report operating points no threshold achieves), and tied scores are never split
    (images with equal scores fall on the same side of every threshold). With N non-members and
    ``fpr`` < 1/N the only admissible thresholds lie above every non-member score, so the result is the
    fraction of members scored strictly above the highest non-member (the TPR at FPR = 0).
    This equals ``max(tpr[fpr_curve <= fpr])`` on ``sklearn.metrics.roc_curve``'s output.
    """
    members = np.asarray(scores_members, dtype=np.float64).ravel()
    non_members = np.sort(np.asarray(scores_non_members, dtype=np.float64).ravel())
    if len(members) == 0 or len(non_members) == 0:
        raise InvalidArgumentError("tpr_at_fpr needs at least one member and one non-member score")
    if not 0.0 <= fpr <= 1.0:
        raise InvalidArgumentError(f"fpr must be a fraction in [0, 1], got {fpr}")
    if np.isnan(members).any() or np.isnan(non_members).any():
        raise InvalidArgumentError("membership scores contain NaN; check the model's outputs")
    allowed = int(np.floor(fpr * len(non_members) + 1e-9))  # false positives we may accept
    if allowed >= len(non_members):
        return 1.0
    # The admissible thresholds are those above the (allowed+1)-th highest non-member score: any t at or below it
    # lets more than `allowed` non-members through. The best TPR counts members strictly above that score.
    boundary = non_members[len(non_members) - 1 - allowed]
    return float((members > boundary).mean())


def resolves(non_members: int, fpr: float) -> bool:
    """Whether ``non_members`` scores can resolve an operating point at ``fpr``: at least one false positive
    must be admissible (N·FPR ≥ 1); below that every admissible threshold lies above all non-members, and the
    "TPR at FPR" would only be the TPR at 0 false positives under another name."""
    return non_members * fpr >= 1 - 1e-9


def low_fpr_summary(scores_members: np.ndarray, scores_non_members: np.ndarray) -> dict[str, object]:
    """The low-FPR operating points of one attack, honest about resolution.

    ``tpr_at_1pct_fpr`` / ``tpr_at_0_1pct_fpr``: TPR (fraction) at 1% / 0.1% FPR, or NaN when the non-members
    cannot resolve that rate (:func:`resolves`); ``tpr_at_0_fp``: the fraction of members scored above every
    non-member (always defined); ``non_members``: how many there were."""
    members = np.asarray(scores_members, dtype=np.float64)
    non_members = np.asarray(scores_non_members, dtype=np.float64)
    count = len(non_members)
    return {"tpr_at_1pct_fpr": tpr_at_fpr(members, non_members, LOW_FPRS[0]) if resolves(count, LOW_FPRS[0])
            else float("nan"),
            "tpr_at_0_1pct_fpr": tpr_at_fpr(members, non_members, LOW_FPRS[1]) if resolves(count, LOW_FPRS[1])
            else float("nan"),
            "tpr_at_0_fp": tpr_at_fpr(members, non_members, 0.0), "non_members": count}


def roc_points(scores_members: np.ndarray, scores_non_members: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(fpr, tpr, auc)`` of the empirical ROC (sklearn's ``roc_curve`` / ``roc_auc_score``; ties count 1/2)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    labels = np.r_[np.ones(len(scores_members)), np.zeros(len(scores_non_members))]
    scores = np.r_[np.asarray(scores_members, dtype=np.float64), np.asarray(scores_non_members, dtype=np.float64)]
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return fpr, tpr, float(roc_auc_score(labels, scores))


def _sample(size: int, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randperm(size, generator=generator)[:n].sort().values


def _halves(n: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of ``range(n)`` into an attack-training half and a disjoint evaluation half."""
    order = torch.randperm(n, generator=generator).numpy()
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def art_blackbox_scores(model: nn.Module, x_members: torch.Tensor, y_members: torch.Tensor,
                        x_non_members: torch.Tensor, y_non_members: torch.Tensor, *, nb_classes: int,
                        seed: int = 0, attack_model_type: str = "rf") -> dict[str, np.ndarray]:
    """Fit ART's ``MembershipInferenceBlackBox`` on one half of each group and score the other half.

    Returns ``member_scores`` / ``non_member_scores`` (the attack's membership probability, in [0, 1], on the
    evaluation halves) and the index arrays ``train_members`` / ``eval_members`` / ``train_non_members`` /
    ``eval_non_members`` (positions in the given tensors; the two halves of each group are disjoint).
    """
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox

    if attack_model_type not in ART_ATTACK_MODELS:
        raise InvalidArgumentError(f"unknown ART attack model '{attack_model_type}'; use one of: "
                                   f"{', '.join(ART_ATTACK_MODELS)}")
    if min(len(x_members), len(x_non_members)) < 4:
        raise InvalidArgumentError("the ART attack needs at least 4 members and 4 non-members (2 to fit, 2 to score)")
    generator = torch.Generator().manual_seed(seed + 1)
    fit_m, eval_m = _halves(len(x_members), generator)
    fit_n, eval_n = _halves(len(x_non_members), generator)
    classifier = probability_classifier(model, tuple(x_members.shape[1:]), nb_classes)
    # ART's default random forest draws from NumPy's global RNG and its nn from torch's: seed both, then restore.
    numpy_state = np.random.get_state()
    np.random.seed(seed % 2**32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        attack = MembershipInferenceBlackBox(classifier, input_type="prediction", attack_model_type=attack_model_type)
        as_numpy = lambda t: t.detach().cpu().numpy().astype(np.float32)  # noqa: E731
        labels = lambda t: t.detach().cpu().numpy()  # noqa: E731
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attack.fit(x=as_numpy(x_members[fit_m]), y=labels(y_members[fit_m]),
                       test_x=as_numpy(x_non_members[fit_n]), test_y=labels(y_non_members[fit_n]))
            member_scores = attack.infer(as_numpy(x_members[eval_m]), labels(y_members[eval_m]), probabilities=True)
            non_member_scores = attack.infer(as_numpy(x_non_members[eval_n]), labels(y_non_members[eval_n]),
                                             probabilities=True)
    np.random.set_state(numpy_state)
    return {"member_scores": np.asarray(member_scores, dtype=np.float64).ravel(),
            "non_member_scores": np.asarray(non_member_scores, dtype=np.float64).ravel(),
            "train_members": fit_m, "eval_members": eval_m, "train_non_members": fit_n, "eval_non_members": eval_n}


def _row(attack: str, members: np.ndarray, non_members: np.ndarray, accuracy: tuple[float, float],
         seconds: float, result: MembershipResult) -> None:
    fpr, tpr, auc = roc_points(members, non_members)
    result.roc[attack] = (fpr, tpr)
    result.rows.append({
        "attack": attack, "auc": auc,
        "tpr_at_1pct_fpr": tpr_at_fpr(members, non_members, LOW_FPRS[0]),
        "tpr_at_0_1pct_fpr": tpr_at_fpr(members, non_members, LOW_FPRS[1]),
        "train_accuracy": accuracy[0], "test_accuracy": accuracy[1], "gap": accuracy[0] - accuracy[1],
        "members": len(members), "non_members": len(non_members), "seconds": seconds,
    })


def run_membership(model: nn.Module, train_set: ImageDataset, test_set: ImageDataset, *, n: int = 500, seed: int = 0,
                   device: torch.device | str = "cpu", batch_size: int = 256,
                   art_attack_model: str = "rf") -> MembershipResult:
    """Run the three membership-inference attacks on ``model``; see the module docstring for each.

    ``n`` members are drawn (seeded by ``seed``) from ``train_set`` and ``n`` non-members from ``test_set``
    (both [0, 1] images); ``n`` shrinks to the smaller split when a split is smaller (Olivetti's test split
    holds 80). The threshold attacks are scored on all 2·n images; ``art-blackbox`` (attack model
    ``art_attack_model``: "rf" random forest or "nn") is fit on a seeded half of each group and scored only on
    the other, disjoint half. ``batch_size`` is the forward-pass batch (images).
    """
    if n < 2:
        raise InvalidArgumentError(f"n must be at least 2 (members and non-members each), got {n}")
    if art_attack_model not in ART_ATTACK_MODELS:
        raise InvalidArgumentError(f"unknown ART attack model '{art_attack_model}'; use one of: "
                                   f"{', '.join(ART_ATTACK_MODELS)}")
    torch_device = select_device(device)
    model = model.to(torch_device).eval()
    count = min(n, len(train_set), len(test_set))
    if count < n:
        log(f"membership: {count} members and {count} non-members (the smaller split holds {count} images)")
    generator = torch.Generator().manual_seed(seed)
    x_in, y_in = train_set.tensors(_sample(len(train_set), count, generator))
    x_out, y_out = test_set.tensors(_sample(len(test_set), count, generator))

    started = time.perf_counter()
    logits_in = predict_logits(model, x_in, batch_size=batch_size, device=torch_device).cpu()
    logits_out = predict_logits(model, x_out, batch_size=batch_size, device=torch_device).cpu()
    forward_seconds = time.perf_counter() - started
    if not (torch.isfinite(logits_in).all() and torch.isfinite(logits_out).all()):
        raise InvalidArgumentError("the model returned NaN/inf logits; membership scores would be meaningless")
    accuracy = ((logits_in.argmax(1) == y_in).float().mean().item(), (logits_out.argmax(1) == y_out).float().mean().item())
    result = MembershipResult()

    # float64: in float32 the loss of confidently fit images rounds to exactly 0, and such ties cannot be split
    loss_in = F.cross_entropy(logits_in.double(), y_in, reduction="none").numpy()
    loss_out = F.cross_entropy(logits_out.double(), y_out, reduction="none").numpy()
    _row("loss-threshold", -loss_in, -loss_out, accuracy, forward_seconds, result)
    # log-softmax in float64 keeps distinct scores for confidences that round to 1.0 in float32 (overfit models)
    confidence_in = torch.log_softmax(logits_in.double(), 1).max(1).values.numpy()
    confidence_out = torch.log_softmax(logits_out.double(), 1).max(1).values.numpy()
    _row("confidence-threshold", confidence_in, confidence_out, accuracy, forward_seconds, result)

    started = time.perf_counter()
    art = art_blackbox_scores(model, x_in.to(torch_device), y_in, x_out.to(torch_device), y_out,
                              nb_classes=int(logits_in.shape[1]), seed=seed, attack_model_type=art_attack_model)
    # the accuracy gap beside the ART row is measured on the very images that attack was scored on
    eval_in, eval_out = torch.from_numpy(art["eval_members"]), torch.from_numpy(art["eval_non_members"])
    evaluated = ((logits_in[eval_in].argmax(1) == y_in[eval_in]).float().mean().item(),
                 (logits_out[eval_out].argmax(1) == y_out[eval_out]).float().mean().item())
    _row("art-blackbox", art["member_scores"], art["non_member_scores"], evaluated, time.perf_counter() - started,
         result)
    return result


def roc_figure(result: MembershipResult, min_fpr: float = 1e-3) -> str:
    """PNG data URI of every attack's ROC, FPR on a log axis from ``min_fpr`` to 1, with the chance line.

    FPR = 0 points are drawn at ``min_fpr`` (a log axis has no 0); the legend gives each attack's AUC.
    """
    from trustkit.images import figure_uri, new_figure

    fig, ax = new_figure(5.6, 4.2)
    chance = np.logspace(np.log10(min_fpr), 0, 200)
    ax.plot(chance, chance, linestyle="--", color="grey", linewidth=1, label="chance (AUC 0.50)")
    aucs = {row["attack"]: row["auc"] for row in result.rows}
    styles = ("-", (0, (5, 2)), "-.", ":")  # distinct dashes: two attacks can trace the very same curve
    for k, (attack, (fpr, tpr)) in enumerate(result.roc.items()):
        ax.step(np.maximum(fpr, min_fpr), tpr, where="post", linestyle=styles[k % len(styles)], linewidth=1.6,
                label=f"{attack} (AUC {aucs.get(attack, float('nan')):.3f})")
    for level in LOW_FPRS:
        if level >= min_fpr:
            ax.axvline(level, color="lightgrey", linewidth=0.8, zorder=0)
    ax.set_xscale("log")
    ax.set_xlim(min_fpr, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false-positive rate (non-members called members, log scale)")
    ax.set_ylabel("true-positive rate (members found)")
    ax.set_title("membership inference ROC")
    ax.legend(loc="upper left", fontsize=8)
    return figure_uri(fig)
