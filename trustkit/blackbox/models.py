"""Models of black-box evaluations: spec checks before any training, logit ensembles, crafting and judging."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from trustkit.attacks import Attack
from trustkit.batches import map_batches
from trustkit.errors import InvalidArgumentError, UnknownNameError
from trustkit.models import MODELS
from trustkit.models.library import is_library_spec
from trustkit.models.loading import FACTORY_PATTERN, LoadedModel, resolve_model
from trustkit.models.store import checkpoint_exists, store_path
from trustkit.runtime import ProgressTask
from trustkit.train.zoo import ensure_trained

ENSEMBLE_SEPARATOR = "+"


def split_specs(values: Sequence[str] | str, option: str) -> list[str]:
    """``"cnn,mlp"`` or ``["cnn", "mlp"]`` -> ``["cnn", "mlp"]`` (duplicates dropped, order kept)."""
    items = [values] if isinstance(values, str) else list(values)
    specs = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    if not specs:
        raise InvalidArgumentError(f"no {option} model given; name one or more, e.g. {option} cnn,mlp")
    return list(dict.fromkeys(specs))


def check_model_spec(spec: str) -> None:
    """Refuse an unknown zoo name (with a "did you mean") before any model is loaded or trained.

    Files, store entries and ``package.module:factory`` specs are checked when they load.
    """
    if spec in MODELS or os.path.exists(spec) or "/" in spec or spec.endswith((".safetensors", ".json", ".pt",
                                                                               ".pth", ".ts", ".zip")):
        return
    if checkpoint_exists(store_path(spec)) or FACTORY_PATTERN.match(spec) or is_library_spec(spec):
        return
    try:
        MODELS.canonical(spec)
    except UnknownNameError as exc:
        raise UnknownNameError(f"{exc}; or give a trained store entry, a .safetensors checkpoint, or (with "
                               "--trust-code) a TorchScript file or package.module:factory") from None


def ensemble_members(spec: str) -> list[str]:
    """The member specs of ``"cnn+mlp"`` (an ensemble averaging logits); ``["cnn"]`` for a single model."""
    members = [m.strip() for m in spec.split(ENSEMBLE_SEPARATOR)]
    if any(not m for m in members):
        raise InvalidArgumentError(f"cannot read ensemble '{spec}'; join model names with '+', e.g. cnn+mlp")
    return members


class LogitEnsemble(nn.Module):
    """Averages the logits of its members: one surrogate made of several models (Liu et al. 2017)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x).float() for member in self.members]).mean(0)


@dataclass
class NamedModel:
    """A model to craft on or to judge with: display name, eval-mode module and where it came from."""

    name: str
    module: nn.Module
    sources: list[str]


class ModelCache:
    """Resolves specs once (training zoo models on first use) and builds ensembles from them."""

    def __init__(self, dataset: str, device: torch.device, data_root: str | None, download: bool,
                 trust_code: bool = False) -> None:
        self.dataset, self.device, self.data_root, self.download = dataset, device, data_root, download
        self.trust_code = trust_code
        self._loaded: dict[str, LoadedModel] = {}

    def load(self, spec: str) -> LoadedModel:
        if spec not in self._loaded:
            ensure_trained(spec, self.dataset, device=self.device, data_root=self.data_root, download=self.download)
            self._loaded[spec] = resolve_model(spec, self.dataset, data_root=self.data_root, device=self.device,
                                               download=self.download, trust_code=self.trust_code)
        return self._loaded[spec]

    def named(self, spec: str) -> NamedModel:
        """``spec`` as one model; ``a+b`` as the logit ensemble of a and b."""
        members = [self.load(m) for m in ensemble_members(spec)]
        if len(members) == 1:
            return NamedModel(members[0].name, members[0].module, [members[0].source])
        module = LogitEnsemble([m.module for m in members]).to(self.device).eval()
        return NamedModel(ENSEMBLE_SEPARATOR.join(m.name for m in members), module, [m.source for m in members])


def craft(attack: Attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int,
          device: torch.device, bar: ProgressTask | None = None) -> torch.Tensor:
    """Adversarial examples of ``attack`` on ``model`` for every image (``x``/``y`` and the result on the CPU)."""
    advance = None if bar is None else (lambda rows: bar.advance(rows / max(len(x), 1)))
    return map_batches(lambda xb, yb: attack(model, xb, yb), x, y, batch_size=batch_size, device=device,
                       progress=advance, empty=torch.empty_like(x))
