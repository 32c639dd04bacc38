"""Sanity checks that flag signs of a weak evaluation or gradient masking (Carlini et al. 2019).

Two kinds: checks of the results frame (robust accuracy vs eps, attack against attack) and probes of the
model itself (unbounded attack, input gradients, probability outputs, randomness). Each returns
:class:`Check` records with status ``pass``, ``flag`` or ``skipped``; reports list them all, so a reader
sees what was checked, not only what failed.
"""
from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from typing import Callable

import pandas as pd
import torch
from torch import nn

from trustkit.attacks.base import format_eps

DOCS = "docs/sanity-checks.md"
SINGLE_STEP_ATTACKS = ("fgsm",)
ITERATIVE_ATTACKS = ("pgd", "bim", "mifgsm", "apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "strong", "strong-rand")
STRONGEST_ATTACKS = ("strong", "strong-rand")
PROBE_SAMPLES = 100  # images the model probes use (cheap next to the attacks themselves)
UNBOUNDED_STEPS = 20
UNBOUNDED_MAX_ROBUST = 0.02  # an eps=1 linf attack may leave at most this fraction standing
VANISHING_SHARE = 0.05  # flag when more than this fraction of correctly classified images have a zero gradient
CURVE_KEYS = ["model", "dataset", "defense", "evaluation", "attack", "engine", "targets", "norm"]


@dataclass(frozen=True)
class Check:
    """Outcome of one sanity check: ``status`` is "pass", "flag" or "skipped"; ``detail`` explains it."""

    name: str
    status: str
    detail: str
    anchor: str

    def to_dict(self) -> dict[str, str]:
        return {**asdict(self), "docs": f"{DOCS}#{self.anchor}"}


def _tolerance(n: int) -> float:
    """Allow one sample of noise (random starts) before calling a difference real."""
    return 1.0 / max(n, 1) + 1e-9


def _keys(results: pd.DataFrame, keys: list[str]) -> list[str]:
    return [k for k in keys if k in results.columns]


def evaluation_strength(results: pd.DataFrame) -> dict[str, str]:
    """How strong the attacks behind a results frame were: ``level`` "strong" (the AutoAttack-grade ensemble
    ran), "iterative" (white-box iterative attacks, but not the ensemble) or "weak" (only single-step or
    black-box attacks: the worst robust accuracy is an upper bound far above the truth); ``note`` says so and
    names the command of a strong evaluation."""
    judged = _untargeted(_judged(results))
    attacks = set(judged["attack"]) if not judged.empty else set()
    first = results.iloc[0]
    eps = ",".join(format_eps(e) for e in sorted(set(results["eps"])))
    command = (f"trustkit bench strong --model {shlex.quote(str(first['model']))} --dataset "
               f"{shlex.quote(str(first['dataset']))} --norm {first['norm']} --eps {eps}")
    if attacks & set(STRONGEST_ATTACKS):
        return {"level": "strong", "note": "", "command": command}
    white_iterative = judged[judged["attack"].isin(ITERATIVE_ATTACKS)
                             & (judged.get("access", "white-box") == "white-box")] if not judged.empty else judged
    if not white_iterative.empty:
        return {"level": "iterative", "command": command,
                "note": "Iterative white-box attacks ran, but not trustkit's strongest evaluation (AutoAttack's "
                        "ensemble, which adds FAB-T and the gradient-free Square): robust accuracy may still be "
                        "overestimated."}
    return {"level": "weak", "command": command,
            "note": "Upper bound only: the worst robust accuracy comes from single-step or black-box attacks, "
                    "which overestimate robustness, often by far."}


def robust_accuracy_monotone(results: pd.DataFrame) -> list[Check]:
    """Robust accuracy must not rise with epsilon: a larger ball contains the smaller one."""
    name, anchor = "robust accuracy falls with epsilon", "monotone-in-epsilon"
    results = _judged(results)
    if results.empty or results.groupby(_keys(results, CURVE_KEYS), dropna=False)["eps"].nunique().max() < 2:
        return [Check(name, "skipped", "needs at least two epsilons for one attack", anchor)]
    problems = []
    for _, group in results.groupby(_keys(results, CURVE_KEYS), sort=False, dropna=False):
        label = f"{group['attack'].iloc[0]} ({group['norm'].iloc[0]}) on {group['model'].iloc[0]}"
        previous = None
        for row in group.sort_values("eps").itertuples():
            if previous is not None and row.robust_accuracy > previous.robust_accuracy + _tolerance(row.n):
                problems.append(f"{label}: {previous.robust_accuracy:.1%} at eps {format_eps(previous.eps)} but "
                                f"{row.robust_accuracy:.1%} at eps {format_eps(row.eps)}")
            previous = row
    if problems:
        return [Check(name, "flag", "robust accuracy rose with epsilon — a sign of gradient masking or a weak "
                      "attack: " + "; ".join(problems), anchor)]
    return [Check(name, "pass", "robust accuracy never rises with epsilon", anchor)]


def _compare(results: pd.DataFrame, weaker: pd.DataFrame, stronger: pd.DataFrame) -> pd.DataFrame:
    """Rows where an attack that should be at least as strong left more points robust (beyond noise)."""
    keys = _keys(results, ["model", "dataset", "defense", "evaluation", "norm", "eps"])
    merged = stronger.merge(weaker, on=keys, suffixes=("_strong", "_weak"))
    return merged[merged["robust_accuracy_strong"] > merged["robust_accuracy_weak"] + merged["n_strong"].map(_tolerance)]


def _pairs(bad: pd.DataFrame, first: str, second: str) -> str:
    """"pgd 60.0% vs fgsm 20.0% at eps 0.1 (linf); ..." for the offending rows of :func:`_compare`."""
    return "; ".join(f"{getattr(r, 'attack_' + first)} {getattr(r, 'robust_accuracy_' + first):.1%} vs "
                     f"{getattr(r, 'attack_' + second)} {getattr(r, 'robust_accuracy_' + second):.1%} at eps "
                     f"{format_eps(r.eps)} ({r.norm})" for r in bad.itertuples())


def _judged(results: pd.DataFrame) -> pd.DataFrame:
    """Rows whose attacker differentiated the judged model (naive defense rows are transfer attacks)."""
    return results[results["evaluation"] != "naive"] if "evaluation" in results.columns else results


def _untargeted(results: pd.DataFrame) -> pd.DataFrame:
    """Rows of untargeted attacks: a targeted attack stops at its target, so its robust accuracy is not
    comparable with an untargeted attack's."""
    if "targets" not in results.columns:
        return results
    return results[results["targets"].fillna("").astype(str) == ""]


def iterative_not_weaker(results: pd.DataFrame) -> list[Check]:
    """An iterative attack must do at least as well as a single step (FGSM) at the same epsilon."""
    name, anchor = "iterative attacks beat single-step ones", "iterative-vs-single-step"
    results = _untargeted(_judged(results))
    single = results[results["attack"].isin(SINGLE_STEP_ATTACKS)]
    iterative = results[results["attack"].isin(ITERATIVE_ATTACKS)]
    if single.empty or iterative.empty:
        return [Check(name, "skipped", "needs a single-step (fgsm) and an iterative attack in the same run", anchor)]
    bad = _compare(results, single, iterative)
    if bad.empty:
        return [Check(name, "pass", "every iterative attack is at least as strong as FGSM", anchor)]
    return [Check(name, "flag", "an iterative attack left more points robust than one gradient step — gradients "
                  "may be masked or the attack misconfigured: " + _pairs(bad, "strong", "weak"), anchor)]


def black_box_not_stronger(results: pd.DataFrame) -> list[Check]:
    """A black-box attack must not beat the best white-box attack on the same model and budget."""
    name, anchor = "white-box attacks beat black-box ones", "black-box-vs-white-box"
    if "access" not in results.columns:
        return [Check(name, "skipped", "no attack access recorded", anchor)]
    results = _untargeted(results)
    black = results[results["access"] == "black-box"]
    white = results[results["access"] == "white-box"]
    if black.empty or white.empty:
        return [Check(name, "skipped", "needs a black-box and a white-box attack in the same run", anchor)]
    keys = _keys(results, ["model", "dataset", "defense", "evaluation", "norm", "eps"])
    best_white = white.loc[white.groupby(keys)["robust_accuracy"].idxmin()]
    bad = _compare(results, black, best_white)
    if bad.empty:
        return [Check(name, "pass", "no black-box attack beat the strongest white-box attack", anchor)]
    return [Check(name, "flag", "a black-box attack, which sees only outputs, did better than gradient attacks — "
                  "the gradients are likely masked or obfuscated: " + _pairs(bad, "weak", "strong"), anchor)]


def adaptive_not_weaker(results: pd.DataFrame) -> list[Check]:
    """Against a defense, the adaptive attack (BPDA/EOT) must do at least as well as the naive one."""
    name, anchor = "adaptive attacks beat naive ones on defenses", "adaptive-vs-naive"
    if "evaluation" not in results.columns:
        return [Check(name, "skipped", "no defense was evaluated", anchor)]
    iterative = results[results["attack"].isin(ITERATIVE_ATTACKS)]  # one step is no fair test of either
    naive = iterative[iterative["evaluation"] == "naive"]
    adaptive = iterative[iterative["evaluation"].astype(str).str.startswith("adaptive")]
    if naive.empty or adaptive.empty:
        return [Check(name, "skipped", "needs an iterative attack on a defense, naive and adaptive", anchor)]
    keys = _keys(results, ["model", "dataset", "defense", "attack", "engine", "norm", "eps"])
    merged = adaptive.merge(naive, on=keys, suffixes=("_adaptive", "_naive"))
    bad = merged[merged["robust_accuracy_adaptive"] > merged["robust_accuracy_naive"] + merged["n_adaptive"].map(_tolerance)]
    if bad.empty:
        return [Check(name, "pass", "every adaptive attack on a defense did at least as well as its naive version",
                      anchor)]
    lines = "; ".join(f"{r.attack} on {r.defense} at eps {format_eps(r.eps)}: adaptive {r.robust_accuracy_adaptive:.1%} "
                      f"vs naive {r.robust_accuracy_naive:.1%}" for r in bad.itertuples())
    return [Check(name, "flag", "an attacker who ignores the defense did better than the adaptive attacker — the "
                  "adaptive attack is misconfigured or too weak (more steps, more EOT samples): " + lines, anchor)]


RESULT_CHECKS: list[Callable[[pd.DataFrame], list[Check]]] = [robust_accuracy_monotone, iterative_not_weaker,
                                                               black_box_not_stronger, adaptive_not_weaker]


def run_checks(results: pd.DataFrame) -> list[Check]:
    """All result-frame checks, in a fixed order."""
    return [check for fn in RESULT_CHECKS for check in fn(results)]


# --- probes of the model itself -------------------------------------------------------------------------

def probe_outputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[Check]:
    """Outputs that are probabilities (rows in [0, 1] summing to 1) squash gradients; randomness needs EOT."""
    with torch.no_grad():
        first, second = model(x).float(), model(x).float()
    checks = []
    name, anchor = "model returns logits, not probabilities", "logits-not-probabilities"
    looks_like_probabilities = bool(first.min() >= 0 and first.max() <= 1 and
                                    torch.allclose(first.sum(1), torch.ones(len(first), device=first.device), atol=1e-3))
    if looks_like_probabilities:
        checks.append(Check(name, "flag", "every output row lies in [0, 1] and sums to 1: the model ends in a softmax. "
                            "Cross-entropy on probabilities has tiny gradients and hides adversarial examples; "
                            "return logits (drop the final softmax) before evaluating", anchor))
    else:
        checks.append(Check(name, "pass", "outputs are not probability vectors", anchor))
    name, anchor = "model is deterministic", "deterministic-model"
    difference = (first - second).abs().max().item() if len(first) else 0.0
    if difference > 1e-5:
        checks.append(Check(name, "flag", f"two forward passes on the same images differ (max |Δ logit| {difference:.3g}): "
                            "the model is randomised, so single gradients are noisy — attack with expectation over "
                            "transformation (average gradients over many passes) before trusting robust accuracy; "
                            "'strong' runs as 'strong-rand' (APGD-CE and APGD-DLR with EOT over 20 draws) here", anchor))
    else:
        checks.append(Check(name, "pass", "two forward passes on the same images agree", anchor))
    return checks


def autograd_calls_in_forward(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of autograd entry points (``torch.autograd.grad``, ``torch.autograd.backward``, ``Tensor.backward``)
    that one forward pass calls.

    As AutoAttack's ``check_dynamic``: such a model differentiates inside its own forward pass (a dynamic
    defense that runs an attack or a purification step on every input), which standard attacks do not handle.
    Watched through a :class:`~torch.overrides.TorchFunctionMode` (all three entry points dispatch to it), not
    ``sys.setprofile``: a profiler, debugger or coverage tool the user runs keeps working.
    """
    from torch.overrides import TorchFunctionMode

    watched = {torch.autograd.grad: "torch.autograd.grad", torch.autograd.backward: "torch.autograd.backward",
               torch.Tensor.backward: "Tensor.backward"}
    seen: list[str] = []

    class AutogradSpy(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
            if func in watched:
                seen.append(watched[func])
            return func(*args, **(kwargs or {}))

    with torch.enable_grad(), AutogradSpy():
        model(x)
    return sorted(set(seen))


def probe_autograd_in_forward(model: nn.Module, x: torch.Tensor) -> list[Check]:
    name, anchor = "no autograd inside the forward pass", "autograd-in-forward"
    calls = autograd_calls_in_forward(model, x[:2])
    if calls:
        return [Check(name, "flag", f"the forward pass calls {', '.join(calls)}: the model differentiates inside "
                      "itself (a dynamic defense). Standard attacks, AutoAttack's included, are not designed for it; "
                      "evaluate it with an adaptive attack built for that defense", anchor)]
    return [Check(name, "pass", "one forward pass calls neither torch.autograd.grad nor backward", anchor)]


def probe_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[Check]:
    """Input gradients that are exactly zero on many correctly classified images signal masking.

    Tiny but non-zero gradients (1e-13 on a confident model) still steer sign- and direction-based attacks,
    so only exact zeros (or non-finite values) count.
    """
    from trustkit.attacks.base import input_gradient, input_gradients_only

    name, anchor = "input gradients are informative", "vanishing-gradients"
    if len(x) == 0:
        return [Check(name, "skipped", "no correctly classified images to probe", anchor)]
    with input_gradients_only(model):
        _, _, grad = input_gradient(model, x, y)
    norms = grad.flatten(1).norm(dim=1)
    share = (norms == 0).float().mean().item()
    if share > VANISHING_SHARE or not torch.isfinite(norms).all():
        return [Check(name, "flag", f"{share:.0%} of correctly classified images have a zero (or non-finite) loss "
                      "gradient w.r.t. the input: gradient attacks cannot move them, which hides their true robustness "
                      "(non-differentiable layers such as rounding, or a softmax saturated past float32). Try "
                      "logit-margin losses (apgd-dlr, cw), gradient-free or BPDA attacks", anchor)]
    return [Check(name, "pass", f"median input-gradient norm {norms.median().item():.3g}; "
                  f"{share:.0%} of images have a zero gradient", anchor)]


def probe_unbounded(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[Check]:
    """At eps = 1 (linf) any image can become any other: a working attack must reach ~0% accuracy."""
    from trustkit.attacks.pgd import PGD

    name, anchor = "unbounded attack reaches 0%", "unbounded-attack"
    if len(x) == 0:
        return [Check(name, "skipped", "no correctly classified images to probe", anchor)]
    x_adv = PGD(1.0, steps=UNBOUNDED_STEPS)(model, x, y)
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y).float().mean().item()
    if robust > UNBOUNDED_MAX_ROBUST:
        return [Check(name, "flag", f"PGD at eps = 1 (linf), which may replace the whole image, left {robust:.0%} of "
                      f"{len(x)} images correctly classified: the attack is not getting useful gradients, so every "
                      "robust accuracy in this report is an upper bound at best", anchor)]
    return [Check(name, "pass", f"PGD at eps = 1 (linf) leaves {robust:.0%} of {len(x)} images robust", anchor)]


def probe_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                gradient_model: nn.Module | None = None) -> list[Check]:
    """Run the model probes on up to PROBE_SAMPLES images (``x``/``y`` on the CPU).

    ``gradient_model`` is what attacks differentiate when it is not the deployed model (the BPDA/EOT view of
    a defense): the gradient and unbounded-attack probes then test that view — whether the adaptive attacks
    in the report get useful gradients — while the output probes test the deployed model.
    """
    x, y = x[:PROBE_SAMPLES].to(device), y[:PROBE_SAMPLES].to(device)
    checks = probe_outputs(model, x, y) + probe_autograd_in_forward(model, x)
    if gradient_model is not None:
        checks = [Check(c.name, c.status, c.detail + (" — the adaptive rows of this report already use EOT"
                                                      if c.anchor == "deterministic-model" and c.status == "flag" else ""),
                        c.anchor) for c in checks]
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    attacked = gradient_model if gradient_model is not None else model
    for check in probe_gradients(attacked, x[correct], y[correct]) + probe_unbounded(attacked, x[correct], y[correct]):
        detail = check.detail + (" (tested on the adaptive BPDA/EOT view the attacks use)" if gradient_model is not None
                                 else "")
        checks.append(Check(check.name, check.status, detail, check.anchor))
    return checks
