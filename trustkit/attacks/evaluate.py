"""Run one attack at one threat model over a data subset and summarise it as a tidy result row."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from trustkit.attacks import Attack, perturbation_norms
from trustkit.attacks.queries import QueryCounter
from trustkit.errors import InvalidArgumentError
from trustkit.models.inference import predict_logits
from trustkit.runtime import ProgressTask


TARGET_POLICIES = ("random", "least-likely")


@dataclass
class Predictions:
    """Per-sample predicted label, its softmax probability (fraction in [0, 1]) and the least likely label."""

    label: torch.Tensor
    confidence: torch.Tensor
    least_likely: torch.Tensor | None = None

    @classmethod
    def from_logits(cls, logits: torch.Tensor) -> "Predictions":
        confidence, label = logits.float().softmax(1).max(1)
        return cls(label.cpu(), confidence.cpu(), logits.argmin(1).cpu())


def choose_targets(policy: str, clean: Predictions, y: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """Target labels for a targeted attack, never the true label: ``random`` (uniform over the other classes,
    seeded) or ``least-likely`` (the class the clean image scores lowest; the next-lowest if that is ``y``)."""
    if policy == "random":
        offset = torch.randint(1, num_classes, (len(y),), generator=torch.Generator().manual_seed(seed + 7))
        return (y + offset) % num_classes
    if policy == "least-likely":
        if clean.least_likely is None:
            raise ValueError("least-likely targets need the clean logits' argmin")
        return torch.where(clean.least_likely == y, (y + 1) % num_classes, clean.least_likely)
    raise InvalidArgumentError(f"unknown target policy '{policy}'; use one of: {', '.join(TARGET_POLICIES)}")


@dataclass
class AttackOutcome:
    """Per-sample results of one (attack, eps) cell; tensors are on the CPU, indexed like the inputs."""

    attack: Attack
    adversarial: Predictions
    linf: torch.Tensor
    l2: torch.Tensor
    attacked: torch.Tensor  # bool: the attack ran on this sample (untargeted attacks skip misclassified ones)
    seconds: float
    gallery_x_adv: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    broken_by: dict[str, int] = field(default_factory=dict)  # ensemble member -> samples it broke
    queries: torch.Tensor | None = None  # black-box attacks: model queries spent per sample (int64; -1 not attacked)
    targets: torch.Tensor | None = None  # targeted attacks: the target label of each sample
    broken: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))  # member index per sample
    reused: int = 0  # samples counted as fooled from a smaller budget of the ε-curve (see Settled)


@dataclass
class Settled:
    """Per-sample results of the same attack at a smaller budget of an ε-curve, which a larger budget reuses.

    A point fooled at ε_k stays fooled at every ε > ε_k (its perturbation lies in the bigger ball), so a curve
    attacks at ε only the samples still standing and copies the rest. Robust accuracy at ε is then the fraction
    that survived the attack at every budget up to ε: the curve never rises with ε (as true robust accuracy
    cannot), where attacks run at each ε alone can (FGSM often does), and the fooled samples are not paid for
    again. Random starts are drawn for the standing samples only, so a single figure can differ from a
    from-scratch run's by the attack's own run-to-run spread (``--independent-eps`` runs that way).
    """

    fooled: torch.Tensor  # bool: attacked and misclassified at the smaller budget
    label: torch.Tensor
    confidence: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor
    broken: torch.Tensor  # ensemble member index that broke each sample (-1: none / not an ensemble)
    gallery_x_adv: torch.Tensor  # the adversarial gallery images (indexed like the gallery)
    gallery_index: torch.Tensor

    @classmethod
    def from_outcome(cls, outcome: "AttackOutcome", y: torch.Tensor,
                     gallery_index: torch.Tensor | None) -> "Settled":
        fooled = outcome.attacked & (outcome.adversarial.label != y)
        index = gallery_index if gallery_index is not None else torch.empty(0, dtype=torch.long)
        return cls(fooled, outcome.adversarial.label.clone(), outcome.adversarial.confidence.clone(),
                   outcome.linf.clone(), outcome.l2.clone(), outcome.broken.clone(), outcome.gallery_x_adv.clone(),
                   index)


def reuses_smaller_budgets(attack: Attack) -> bool:
    """Whether a curve of this attack may carry a smaller budget's results (:class:`Settled`): untargeted (a
    target reached is not the same as fooled), bounded (a minimum-norm search serves the grid already) and
    white-box (a black-box attack's per-sample query counts would not add up)."""
    return not (attack.targeted or attack.minimum_norm or attack.access == "black-box")


def clean_predictions(model: nn.Module, x: torch.Tensor, *, batch_size: int, device: torch.device) -> Predictions:
    """Predictions on unmodified images."""
    model.eval()
    return Predictions.from_logits(predict_logits(model, x, batch_size=batch_size, device=device))


def run_attack(model: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor, clean: Predictions, *,
               batch_size: int, device: torch.device, gallery_index: torch.Tensor | None = None,
               bar: ProgressTask | None = None, unbounded: dict[int, torch.Tensor] | None = None,
               attack_model: nn.Module | None = None, targets: torch.Tensor | None = None,
               settled: Settled | None = None) -> AttackOutcome:
    """Attack every sample the model classifies correctly (a misclassified one is already an adversarial
    example, as in AutoAttack), in batches on ``device``; ``x``/``y`` stay on the CPU.

    A targeted attack needs ``targets`` (one label per sample, never the true one; see :func:`choose_targets`):
    it is given those instead of the true labels.

    ``attack_model`` is what the attacker differentiates (default ``model``): the undefended model for a
    naive attack on a defense, its BPDA/EOT view for an adaptive one. Predictions always use ``model``.

    For minimum-norm attacks, ``unbounded`` caches their eps-free search per batch: the first cell of an eps
    grid pays for it, later cells only project it onto their ball.

    ``settled`` (untargeted white-box attacks on deterministic models) holds this attack's results at a smaller
    budget: the samples it fooled there are not attacked again but keep that adversarial example (see
    :class:`Settled`).
    """
    if attack.targeted:
        if targets is None or targets.shape != y.shape or bool((targets == y).any()):
            raise ValueError("a targeted attack needs one target label per sample, none equal to the true label")
    aim = targets if attack.targeted else y  # what the attack is given: targets, or the labels to leave
    attacked = clean.label == y
    x_adv = x.clone()
    if settled is not None and not reuses_smaller_budgets(attack):
        raise ValueError("only untargeted, bounded white-box attacks reuse a smaller budget's results")
    carried = settled.fooled & attacked if settled is not None else torch.zeros_like(attacked)
    rows = (attacked & ~carried).nonzero().squeeze(1)
    broken = torch.full((len(x),), -1, dtype=torch.long)
    attack_model = model if attack_model is None else attack_model
    reuse = unbounded is not None and attack.minimum_norm
    queries = torch.full((len(x),), -1, dtype=torch.long) if attack.access == "black-box" and not reuse else None
    started = time.perf_counter()
    for start in range(0, len(rows), batch_size):
        index = rows[start:start + batch_size]
        xb, yb = x[index].to(device, non_blocking=True), aim[index].to(device, non_blocking=True)
        if reuse:
            if start not in unbounded:
                unbounded[start] = attack.find_unbounded(attack_model, xb, yb).to("cpu")
            x_adv[index] = attack.threat.project_strict(unbounded[start].to(device), xb).to("cpu")
        elif queries is not None:
            x_adv[index], queries[index] = run_counting_queries(attack, attack_model, xb, yb)
        else:
            x_adv[index] = attack(attack_model, xb, yb).to("cpu")
        members = getattr(attack, "last_broken_by", None)
        if members is not None and len(members) == len(index):
            broken[index] = members
        if bar is not None:
            bar.advance(len(index))
    if bar is not None and len(rows) < len(x):
        bar.advance(len(x) - len(rows))
    judged = (~carried).nonzero().squeeze(1)  # carried samples keep the verdict of the smaller budget
    logits = predict_logits(model, x_adv[judged], batch_size=batch_size, device=device)
    adversarial = Predictions(clean.label.clone(), clean.confidence.clone(), None)
    if len(judged):
        fresh = Predictions.from_logits(logits)
        adversarial.label[judged], adversarial.confidence[judged] = fresh.label, fresh.confidence
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    linf, l2 = perturbation_norms(x_adv, x)
    gallery = x_adv[gallery_index] if gallery_index is not None else torch.empty(0)
    if settled is not None and bool(carried.any()):
        adversarial.label[carried], adversarial.confidence[carried] = settled.label[carried], settled.confidence[carried]
        linf[carried], l2[carried], broken[carried] = settled.linf[carried], settled.l2[carried], settled.broken[carried]
        if gallery_index is not None and len(gallery_index):
            if not torch.equal(settled.gallery_index, gallery_index):
                raise ValueError("a settled ε-curve record belongs to another gallery")
            keep = carried[gallery_index].view(-1, *[1] * (x.ndim - 1))
            gallery = torch.where(keep, settled.gallery_x_adv, gallery)
    member_names = getattr(attack, "members", None)
    breakdown = {}
    if member_names is not None:
        succeeded = adversarial.label != y
        breakdown = {name: int(((broken == i) & succeeded).sum()) for i, name in enumerate(member_names)}
    return AttackOutcome(attack, adversarial, linf, l2, attacked, seconds, gallery, breakdown, queries,
                         targets if attack.targeted else None, broken, int(carried.sum()))


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (fractions in [0, 1])."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _mean_or_nan(values: torch.Tensor) -> float:
    return values.float().mean().item() if len(values) else math.nan


def summarize(outcome: AttackOutcome, y: torch.Tensor, clean: Predictions) -> dict[str, float | int | str]:
    """The numbers of one result row.

    Accuracies and rates are fractions in [0, 1]. ``robust_accuracy`` counts samples classified correctly
    both before and after the attack (targeted attacks too); ``success_rate`` is the fraction of clean-correct
    samples the attack flipped, or for a targeted attack the fraction it moved to their target label. Perturbation norms and ``mean_adv_confidence`` average over successful adversarial examples
    (NaN when there are none); norms are in pixel units on [0, 1].
    """
    n = len(y)
    clean_correct = clean.label == y
    adv_correct = outcome.adversarial.label == y
    robust = clean_correct & adv_correct  # targeted attacks are scored by the same untargeted criterion
    flipped = clean_correct & ~adv_correct
    hit_target = clean_correct & (outcome.adversarial.label == outcome.targets) if outcome.targets is not None else None
    low, high = wilson_interval(int(robust.sum()), n)
    return {
        "n": n,
        "clean_accuracy": clean_correct.float().mean().item(),
        "robust_accuracy": robust.float().mean().item(),
        "robust_ci_low": low,
        "robust_ci_high": high,
        "success_rate": ((hit_target if outcome.targets is not None else flipped).sum() / clean_correct.sum()).item()
        if clean_correct.any() else math.nan,
        "mean_linf": _mean_or_nan(outcome.linf[flipped]),
        "mean_l2": _mean_or_nan(outcome.l2[flipped]),
        "max_linf": outcome.linf.max().item() if n else math.nan,
        "max_l2": outcome.l2.max().item() if n else math.nan,
        "mean_adv_confidence": _mean_or_nan(outcome.adversarial.confidence[flipped]),
        "seconds": outcome.seconds,
        "access": outcome.attack.access,
        "broken_by": ";".join(f"{k}:{v}" for k, v in outcome.broken_by.items()),
        **query_summary(outcome, clean_correct, flipped),
    }


# --- query accounting of black-box attacks ---------------------------------------------------------------

def run_counting_queries(attack: Attack, model: nn.Module, x: torch.Tensor,
                         y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_adv on the CPU, model queries spent per image)`` of a black-box attack on one batch.

    Attacks that count their own queries expose ``last_queries`` (``square`` and ``hopskipjump``: the query at
    which each image was first fooled, else what it spent, at most the budget). Others — ``art:ClassName``
    black-box attacks — run one image at a time on a model wrapper that counts input rows, so every row ART
    sends is charged to its image, ART's own bookkeeping included (the bridge's probe for the class count, and
    e.g. HopSkipJump's closing success-rate check): an upper bound on what the search needed.
    """
    if hasattr(attack, "last_queries"):
        x_adv = attack(model, x, y).to("cpu")
        return x_adv, attack.last_queries.to("cpu", torch.long)
    counter = QueryCounter(model)
    outputs, counts = [], []
    for i in range(len(x)):
        before = counter.rows
        outputs.append(attack(counter, x[i:i + 1], y[i:i + 1]).to("cpu"))
        counts.append(counter.rows - before)
    return torch.cat(outputs), torch.tensor(counts, dtype=torch.long)


def query_summary(outcome: AttackOutcome, clean_correct: torch.Tensor,
                  flipped: torch.Tensor) -> dict[str, object]:
    """``queries``: the median number of model queries per successful adversarial example (the Square
    paper's convention; NaN for white-box attacks or when none succeeded). ``query_curve`` (black-box attacks
    only; kept in the cell row and the report, not in results.csv): per successful example the queries it
    took, so that the success rate within any budget q is ``sum(queries <= q) / clean_correct``.
    """
    if outcome.queries is None:
        return {"queries": math.nan}
    spent = outcome.queries
    attacked = spent >= 0
    successful = sorted(int(q) for q in spent[flipped & attacked])
    budget = getattr(outcome.attack, "n_queries", None)
    return {
        "queries": float(np.median(successful)) if successful else math.nan,
        "query_curve": {"success_queries": successful, "clean_correct": int(clean_correct.sum()),
                        "attacked": int(attacked.sum()), "total_queries": int(spent[attacked].sum()),
                        "budget": int(budget) if budget is not None else None},
    }


def per_class_robust_accuracy(outcome: AttackOutcome, y: torch.Tensor, clean: Predictions,
                              num_classes: int) -> list[dict[str, float | int]]:
    """Per true class: sample count, clean and robust accuracy (fractions)."""
    rows = []
    robust = (clean.label == y) & (outcome.adversarial.label == y)
    for label in range(num_classes):
        mask = y == label
        count = int(mask.sum())
        rows.append({"class_index": label, "n": count,
                     "clean_accuracy": (clean.label[mask] == label).float().mean().item() if count else math.nan,
                     "robust_accuracy": robust[mask].float().mean().item() if count else math.nan})
    return rows
