"""Bridge to the Adversarial Robustness Toolbox (ART): run ART's attacks on trustkit models.

``--engine art`` runs a trustkit attack name with ART's implementation (parameters translated), and
``art:ClassName`` reaches any ART evasion attack with parameters passed through. Either way the result is
projected onto the threat model, so rows from both engines mean the same thing.
"""
from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from trustkit.attacks.base import Attack
from trustkit.errors import InvalidArgumentError, UnknownNameError

ART_PREFIX = "art:"


def art_norm(norm: str) -> float:
    return np.inf if norm == "linf" else 2


class _Float32Input(nn.Module):
    """Casts inputs to float32: some ART attacks (HopSkipJump) hand the model float64 arrays."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.float())


def art_classifier(model: nn.Module, input_shape: tuple[int, ...], nb_classes: int):  # noqa: ANN201 - ART type
    """Wrap ``model`` (on [0, 1] inputs, logits out) as an ART ``PyTorchClassifier`` on its own device."""
    from art.estimators.classification import PyTorchClassifier

    device = next(iter(model.parameters()), torch.empty(0)).device
    return PyTorchClassifier(model=_Float32Input(model), loss=nn.CrossEntropyLoss(), input_shape=tuple(input_shape),
                             nb_classes=nb_classes, clip_values=(0.0, 1.0),
                             device_type="gpu" if device.type == "cuda" else "cpu")


def _evasion_class(class_name: str) -> type:
    import art.attacks.evasion as evasion

    from art.attacks.attack import EvasionAttack

    cls = None if class_name.startswith("_") else getattr(evasion, class_name, None)
    if not (inspect.isclass(cls) and issubclass(cls, EvasionAttack)):  # not '__class__', not a helper class
        names = sorted(n for n, c in vars(evasion).items() if inspect.isclass(c) and issubclass(c, EvasionAttack)
                       and not n.startswith("_"))
        import difflib

        close = difflib.get_close_matches(class_name, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UnknownNameError(f"ART has no evasion attack '{class_name}'{hint}; see art.attacks.evasion for names "
                               "such as FastGradientMethod, HopSkipJump, SquareAttack")
    return cls


def is_black_box(cls: type) -> bool:
    """ART attacks that need no gradients from the estimator are black-box (decision- or score-based)."""
    requirements = getattr(cls, "_estimator_requirements", ()) or ()
    names = {getattr(r, "__name__", str(r)) for r in requirements}
    return not names & {"LossGradientsMixin", "ClassGradientsMixin"}


class ArtAttack(Attack):
    """An ART evasion attack class run on a trustkit model; ``params`` go to the class's constructor.

    eps, norm, batch size and verbosity are filled in where the class takes them and ``params`` does not.
    """

    def __init__(self, eps: float | str, *, norm: str = "linf", class_name: str, batch_size: int = 256,
                 label: str | None = None, **params: Any) -> None:
        super().__init__(eps, norm=norm)
        self.cls = _evasion_class(class_name)
        accepted = set(inspect.signature(self.cls.__init__).parameters)
        reserved = set(params) & {"self", "estimator", "classifier"}
        if reserved:
            raise InvalidArgumentError(f"ART {class_name}: {', '.join(sorted(reserved))} is the model under attack, "
                                       "which trustkit passes itself; drop that -p parameter")
        unknown = set(params) - accepted
        if unknown:
            raise InvalidArgumentError(f"ART {class_name} takes no parameter {', '.join(sorted(unknown))}; it takes: "
                                       f"{', '.join(sorted(accepted - {'self', 'estimator', 'classifier'}))}")
        defaults = {"eps": self.eps, "norm": art_norm(norm), "batch_size": batch_size, "verbose": False}
        self.kwargs = {**{k: v for k, v in defaults.items() if k in accepted}, **params}
        self.name = label or f"{ART_PREFIX}{class_name}"
        self.access = "black-box" if is_black_box(self.cls) else "white-box"

    def params(self) -> dict[str, object]:
        shown = {k: (str(v) if isinstance(v, float) and np.isinf(v) else v) for k, v in self.kwargs.items()}
        return {**super().params(), "art_class": self.cls.__name__, **shown}

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            nb_classes = int(model(x[:1]).shape[1])
        classifier = art_classifier(model, tuple(x.shape[1:]), nb_classes)
        attack = self.cls(classifier, **self.kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x_adv = attack.generate(x.detach().cpu().numpy().astype(np.float32), y=y.detach().cpu().numpy())
        return torch.from_numpy(np.asarray(x_adv, dtype=np.float32)).to(x.device)


# trustkit attack name -> (ART class, translation of trustkit parameters to ART's)
Translation = Callable[[dict[str, Any]], dict[str, Any]]
EQUIVALENTS: dict[str, tuple[str, Translation]] = {
    "fgsm": ("FastGradientMethod", lambda p: {}),
    "pgd": ("ProjectedGradientDescent", lambda p: {
        "eps_step": p["alpha"], "max_iter": p["steps"],
        "num_random_init": p["restarts"] if p["random_start"] else 0}),
    "bim": ("BasicIterativeMethod", lambda p: {"eps_step": p["alpha"], "max_iter": p["steps"]}),
    "mifgsm": ("MomentumIterativeMethod", lambda p: {"eps_step": p["alpha"], "max_iter": p["steps"],
                                                    "decay": p["decay"]}),
    "apgd-ce": ("AutoProjectedGradientDescent", lambda p: {"max_iter": p["steps"], "nb_random_init": p["restarts"],
                                                           "loss_type": "cross_entropy", "eps_step": 2 * p["eps"]}),
    "apgd-dlr": ("AutoProjectedGradientDescent", lambda p: {"max_iter": p["steps"], "nb_random_init": p["restarts"],
                                                            "loss_type": "difference_logits_ratio",
                                                            "eps_step": 2 * p["eps"]}),
    "cw": ("CarliniL2Method", lambda p: {"max_iter": p["steps"], "binary_search_steps": p["binary_search_steps"],
                                         "initial_const": p["initial_const"], "learning_rate": p["lr"],
                                         "confidence": p["confidence"]}),
    "deepfool": ("DeepFool", lambda p: {"max_iter": p["steps"], "epsilon": p["overshoot"],
                                        "nb_grads": p["candidates"]}),
    "strong": ("AutoAttack", lambda p: {}),
}


def art_equivalent(name: str, native: Attack, batch_size: int = 256) -> ArtAttack:
    """ART's implementation of trustkit attack ``name``, configured like the ``native`` instance."""
    if name not in EQUIVALENTS:
        raise InvalidArgumentError(f"attack '{name}' has no ART equivalent; use --engine trustkit, or name an ART "
                                   f"class directly with --attack art:ClassName (equivalents exist for: "
                                   f"{', '.join(EQUIVALENTS)})")
    class_name, translate = EQUIVALENTS[name]
    params = native.params()
    kwargs = translate(params)
    if native.norm == "l2" and name == "bim":
        raise InvalidArgumentError("ART's BasicIterativeMethod is linf only; use --norm linf or --engine trustkit")
    if name == "deepfool" and native.norm != "l2":
        raise InvalidArgumentError("ART's DeepFool is l2 only; use --norm l2 or --engine trustkit")
    return ArtAttack(native.eps, norm=native.norm, class_name=class_name, batch_size=batch_size, label=name, **kwargs)
