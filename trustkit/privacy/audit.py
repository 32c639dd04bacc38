"""The privacy audit: how much of a private input can be rebuilt from a model's intermediate features, and
what the model gives away about its training set.

:func:`load_subject` loads the target classifier and the data set, picks the victims (test images neither the
target nor the re-identification classifier trained on) and trains (or reuses) the re-identification
classifier; :func:`invert` runs one feature-inversion attack on one layer, raw or under a split-layer
mitigation, and scores the reconstructions (PSNR, SSIM, re-identification top-1/top-5 against chance);
:func:`rate_layers` rates each layer's risk beside the mean-image baseline (:func:`reference_rows`);
:func:`membership` and :func:`model_inversion` add membership inference and MIFace model inversion. The study
that runs these as engine cells is :mod:`trustkit.studies.privacy_audit`; its report is
:mod:`trustkit.report.privacy`.

Risk rating of a layer (worst case over the attacks, on the victims):

- **high**: mean SSIM ≥ 0.5 (and above the mean-image baseline), or re-identification top-1 ≥ 50% and
  significantly above chance;
- **medium**: mean SSIM ≥ 0.3 (He et al. 2019's "recognisable" threshold) and above the baseline, or top-1
  significantly above chance (3 binomial standard errors);
- **low**: neither — reconstructions are unrecognisable and name the right person no more often than chance.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.models import build_model
from trustkit.models.loading import resolve_model, zoo_arch
from trustkit.privacy.inverse_net import InverseNetworkAttack, model_fingerprint
from trustkit.privacy.inversion import (DEFAULT_PRIOR, GenerativePriorInversion, InversionAttack, InversionTarget,
                                       WhiteBoxInversion)
from trustkit.models.features import FeatureExtractor, LayerInfo, describe_layers, frozen, resolve_layers
from trustkit.privacy.metrics import UNRECOGNISABLE_SSIM, psnr, ssim
from trustkit.privacy.mitigations import (DEFAULT_MITIGATIONS, feature_stats, make_transform, parse_mitigation,
                                         utility)
from trustkit.privacy.reid import ReidClassifier, load_reid
from trustkit.registry import Registry
from trustkit.runtime import log, seed_everything
from trustkit.privacy.risk import rate_layer

ATTACK_NAMES: Registry[str] = Registry("inversion attack")
ATTACK_NAMES.add("white-box", "white-box", summary=WhiteBoxInversion.description, aliases=("whitebox", "wb", "rmle"))
ATTACK_NAMES.add("inverse-net", "inverse-net", summary="learned inverse network (black-box)",
                 aliases=("inverse-network", "inverse", "blackbox", "black-box"))
ATTACK_NAMES.add("gen-prior", "gen-prior", summary=GenerativePriorInversion.description,
                 aliases=("generative-prior", "gan-prior", "vae-prior", "prior"))
DEFAULT_ATTACKS = ("white-box", "inverse-net", "gen-prior")
DEFAULT_N = {"olivetti": 40}  # one test photo per person
FALLBACK_N = 32
RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


@dataclass
class AuditConfig:
    """Everything that determines an audit (saved in run.json). Steps are optimiser steps per attack; ``n``
    victims from the test split (default 40 on Olivetti — one per person — else 32)."""

    model: str = "cnn"
    dataset: str = "digits"
    layers: list[str] | None = None
    attacks: list[str] = field(default_factory=lambda: list(DEFAULT_ATTACKS))
    n: int | None = None
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    download: bool = False
    out: str = "reports"
    whitebox_steps: int = 300
    whitebox_restarts: int | None = None  # default: 2 for images up to 32×32, 1 above
    tv_weight: float = 0.02
    inverse_steps: int | None = None  # default: 1500 for images up to 32×32, 600 above
    prior: str = DEFAULT_PRIOR
    prior_steps: int = 300
    reid_steps: int | None = None  # default: 1500 for images up to 32×32, 800 above
    mitigations: list[str] = field(default_factory=lambda: list(DEFAULT_MITIGATIONS))
    mitigation_layer: str | None = None
    membership: bool = True
    membership_n: int = 500
    model_inversion: bool = True
    mi_classes: int = 10
    mi_max_iter: int = 300
    shadow_models: int = 0  # > 0: add LiRA/RMIA with this many shadow models (trustkit.studies.membership)
    trust_code: bool = False  # the user's consent to a model that is code (package.module:factory)
    use_cache: bool = True
    jobs: int = 1
    backend: str = "local"
    ray_address: str | None = None

    def validate(self) -> "AuditConfig":
        self.attacks = [ATTACK_NAMES.canonical(a) for a in self.attacks]
        if not self.attacks:
            raise InvalidArgumentError("no inversion attack chosen; use --attacks white-box,inverse-net,gen-prior")
        for name, value in (("--n", self.n), ("--steps", self.whitebox_steps), ("--restarts", self.whitebox_restarts),
                            ("--inverse-steps", self.inverse_steps), ("--prior-steps", self.prior_steps),
                            ("--reid-steps", self.reid_steps), ("--membership-n", self.membership_n),
                            ("--mi-classes", self.mi_classes), ("--mi-iter", self.mi_max_iter)):
            if value is not None and value < 1:
                raise InvalidArgumentError(f"{name} must be at least 1, got {value}")
        if self.shadow_models < 0:
            raise InvalidArgumentError(f"--shadow-models must be 0 (no shadow-model attacks) or more, got "
                                       f"{self.shadow_models}")
        if self.tv_weight < 0 or not math.isfinite(self.tv_weight):
            raise InvalidArgumentError(f"--tv-weight must be a finite number >= 0, got {self.tv_weight}")
        for text in self.mitigations:
            parse_mitigation(text)
        return self


def pick_victims(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` indices balanced over classes: a seeded shuffle, then round-robin over classes (so 40 Olivetti
    victims are one photo of each person)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    rank = torch.empty(len(labels), dtype=torch.long)
    for cls in labels.unique():
        members = order[labels[order] == cls]
        rank[members] = torch.arange(len(members))
    position = torch.empty(len(labels), dtype=torch.long)
    position[order] = torch.arange(len(labels))
    key = rank * len(labels) + position  # first by rank within class, then by shuffled position
    return order.new_tensor(sorted(range(len(labels)), key=lambda i: int(key[i]))[:n])


def inversion_attack(name: str, config: AuditConfig, image_pixels: int) -> InversionAttack:
    """Inversion attack ``name`` with the audit's settings (cheaper defaults above 32×32 pixels)."""
    small = image_pixels <= 1024  # up to 32×32: the defaults; larger images get cheaper ones on a CPU
    if name == "white-box":
        return WhiteBoxInversion(steps=config.whitebox_steps, restarts=config.whitebox_restarts or (2 if small else 1),
                                 tv_weight=config.tv_weight)
    if name == "inverse-net":
        steps = config.inverse_steps or (1500 if small else 600)
        return InverseNetworkAttack(steps=steps, batch_size=64 if small else 32)
    return GenerativePriorInversion(generator=config.prior, steps=config.prior_steps, restarts=4 if small else 1)


def score(reconstruction: torch.Tensor, original: torch.Tensor, labels: torch.Tensor,
          reid: ReidClassifier | None) -> dict[str, float]:
    """Mean/std PSNR (dB), SSIM, share below SSIM 0.3, re-identification top-1/top-5 (fractions)."""
    p, s = psnr(reconstruction, original), ssim(reconstruction, original)
    row = {"psnr": float(p.mean()), "psnr_std": float(p.std()) if len(p) > 1 else 0.0,
           "ssim": float(s.mean()), "ssim_std": float(s.std()) if len(s) > 1 else 0.0,
           "unrecognisable": float((s < UNRECOGNISABLE_SSIM).float().mean())}
    if reid is not None:
        top1, top5 = reid.hits(reconstruction, labels)
        row.update(reid_top1=float(top1.mean()), reid_top5=float(top5.mean()))
    else:
        row.update(reid_top1=float("nan"), reid_top5=float("nan"))
    return row


def membership(model: torch.nn.Module, train_set: Any, test_set: Any, config: AuditConfig,
               device: torch.device) -> tuple[Any, pd.DataFrame, str]:
    """Membership inference via ``trustkit.privacy.membership`` (guarded: the audit runs without it)."""
    try:
        from trustkit.privacy.membership import run_membership
    except Exception as exc:  # noqa: BLE001 - a missing or broken optional module must not stop the audit
        return None, pd.DataFrame(), f"membership inference unavailable ({type(exc).__name__}: {exc})"
    try:
        result = run_membership(model, train_set, test_set, n=config.membership_n, seed=config.seed, device=device)
    except Exception as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        log(f"membership inference failed: {type(exc).__name__}: {exc}")
        return None, pd.DataFrame(), f"membership inference failed ({type(exc).__name__}: {exc})"
    return result, pd.DataFrame(result.rows), ""


def model_inversion(model: torch.nn.Module, spec: Any, reid: ReidClassifier | None, config: AuditConfig,
                    device: torch.device) -> tuple[Any, pd.DataFrame, str]:
    """MIFace class representatives via ``trustkit.privacy.model_inversion`` (guarded), re-identified."""
    try:
        from trustkit.privacy.model_inversion import run_model_inversion
    except Exception as exc:  # noqa: BLE001
        return None, pd.DataFrame(), f"model inversion unavailable ({type(exc).__name__}: {exc})"
    classes = list(range(min(config.mi_classes, spec.num_classes)))
    try:
        result = run_model_inversion(model, spec, classes=classes, max_iter=config.mi_max_iter, device=device)
    except Exception as exc:  # noqa: BLE001
        log(f"model inversion failed: {type(exc).__name__}: {exc}")
        return None, pd.DataFrame(), f"model inversion failed ({type(exc).__name__}: {exc})"
    frame = pd.DataFrame(result.rows)
    if reid is not None and len(frame):
        top1, top5 = reid.hits(result.images.float().cpu(), torch.as_tensor(list(result.classes)))
        frame["reid_top1"] = top1.numpy()
        frame["reid_top5"] = top5.numpy()
    return result, frame, ""


def audit_layers(config: AuditConfig) -> tuple[list[LayerInfo], list[LayerInfo], LayerInfo]:
    """``(every layer, the audited layers, the mitigation layer)`` of the target, before anything is trained: a
    zoo name's architecture is built untrained (its layers do not depend on the weights), anything else is
    loaded. A wrong layer name fails here in one line."""
    spec = get_spec(config.dataset)
    arch = zoo_arch(config.model)
    if arch is not None:
        model = build_model(arch, spec)
    else:
        model = resolve_model(config.model, spec.name, data_root=config.data_root, device="cpu",
                              download=config.download, trust_code=config.trust_code).module
    all_layers = describe_layers(model.eval(), spec.shape)
    layers = resolve_layers(all_layers, config.layers)
    mitigation_layer = resolve_layers(all_layers, [config.mitigation_layer])[0] if config.mitigation_layer else layers[0]
    return all_layers, layers, mitigation_layer


@dataclass
class AuditSubject:
    """What every cell of an audit shares: the target model and its layers, the data, the victims (test images
    balanced over classes), the re-identification classifier and the target's clean accuracy."""

    config: AuditConfig
    model_name: str
    model_source: str
    model: torch.nn.Module
    spec: Any  # DatasetSpec
    all_layers: list[LayerInfo]
    layers: list[LayerInfo]
    mitigation_layer: LayerInfo
    train_set: Any  # ImageDataset
    test_set: Any
    victim_index: torch.Tensor
    reid: ReidClassifier
    clean_accuracy: float
    fingerprint: str  # of the target's state dict

    @property
    def victims(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.test_set.tensors(self.victim_index)
        return x, y

    def layer(self, alias: str) -> LayerInfo:
        return next(layer for layer in self.all_layers if layer.alias == alias)

    def to(self, device: torch.device) -> "AuditSubject":
        self.model.to(device)
        self.reid.model.to(device)
        return self


def load_subject(config: AuditConfig, device: torch.device) -> AuditSubject:
    """Load the target (trained already: the engine's prerequisite), its data, victims and re-identification
    classifier (trained once and cached in the store); a wrong layer name fails here in one line."""
    spec = get_spec(config.dataset)
    train_set = load_dataset(spec.name, "train", config.data_root, config.download)
    test_set = load_dataset(spec.name, "test", config.data_root)
    loaded = resolve_model(config.model, spec.name, data_root=config.data_root, device=device,
                           download=config.download, trust_code=config.trust_code)
    model = loaded.module.eval()
    all_layers = describe_layers(model, spec.shape)
    layers = resolve_layers(all_layers, config.layers)
    mitigation_layer = resolve_layers(all_layers, [config.mitigation_layer])[0] if config.mitigation_layer else layers[0]
    n = min(config.n or DEFAULT_N.get(spec.name, FALLBACK_N), len(test_set))
    victim_index = pick_victims(test_set.tensors()[1], n, config.seed)
    pixels = spec.shape[1] * spec.shape[2]
    reid = load_reid(train_set, test_set, steps=config.reid_steps or (1500 if pixels <= 1024 else 800),
                     seed=config.seed, device=device)
    x_test, y_test = test_set.tensors()
    with frozen(model):
        clean_accuracy = utility(model, layers[0], None, x_test, y_test, device)
    return AuditSubject(config, loaded.name, loaded.source, model, spec, all_layers, layers, mitigation_layer,
                        train_set, test_set, victim_index, reid, clean_accuracy, model_fingerprint(model))


def _common(subject: AuditSubject) -> dict[str, Any]:
    return {"model": subject.model_name, "dataset": subject.spec.name, "n": len(subject.victim_index),
            "seed": subject.config.seed}


def reference_rows(subject: AuditSubject) -> list[dict[str, Any]]:
    """The mean-image baseline (what any attacker gets for free) and the originals (the re-identification
    ceiling) as results rows."""
    victims, labels = subject.victims
    aux_images = subject.train_set.tensors()[0]
    mean_image = aux_images.mean(0, keepdim=True).expand_as(victims)
    top1, top5 = (float(v.mean()) for v in subject.reid.hits(victims, labels))
    blank = {"layer": "-", "layer_name": "-", "layer_order": -1, "feature_shape": "-", "feature_values": 0,
             "mitigation": "none", "utility_accuracy": subject.clean_accuracy}
    return [{**_common(subject), "kind": "baseline", **blank, "attack": "mean-image",
             **score(mean_image, victims, labels, subject.reid), "seconds": 0.0},
            {**_common(subject), "kind": "original", **blank, "attack": "original", "psnr": float("inf"),
             "psnr_std": 0.0, "ssim": 1.0, "ssim_std": 0.0, "unrecognisable": 0.0, "reid_top1": top1,
             "reid_top5": top5, "seconds": 0.0}]


def invert(subject: AuditSubject, layer_alias: str, attack_name: str, mitigation_index: int | None,
           device: torch.device) -> dict[str, Any]:
    """One inversion: ``attack_name`` rebuilds the victims from ``layer_alias``'s features — raw, or under the
    ``mitigation_index``-th mitigation of the config (an adaptive attacker who knows the transform). Returns
    the results row, the reconstructions (N×C×H×W in [0, 1]), the attack's parameters and its notes."""
    config, model = subject.config, subject.model
    layer = subject.layer(layer_alias)
    victims, labels = subject.victims
    aux_images = subject.train_set.tensors()[0]
    attack = inversion_attack(attack_name, config, subject.spec.shape[1] * subject.spec.shape[2])
    transform = target_transform = None
    mitigation, util = "none", subject.clean_accuracy
    if mitigation_index is not None:
        parsed = parse_mitigation(config.mitigations[mitigation_index])
        stats = feature_stats(model, layer, aux_images, device)
        seed = config.seed + 1000 * mitigation_index  # three draws of the transform: observed, utility, attacker's
        transform = make_transform(parsed, stats, seed)
        x_test, y_test = subject.test_set.tensors()
        util = utility(model, layer, make_transform(parsed, stats, seed + 1), x_test, y_test, device)
        target_transform, mitigation = make_transform(parsed, stats, seed + 2), parsed.name
    with frozen(model), torch.no_grad():
        observed = FeatureExtractor(model, layer, transform)(victims.to(device)).detach()
    target = InversionTarget(model, subject.model_name, subject.spec.name, layer, subject.spec.shape, aux_images,
                             subject.fingerprint, device, config.data_root, target_transform,
                             mitigation if mitigation_index is not None else "")
    seed_everything(config.seed)
    tic = time.perf_counter()
    notes = attack.prepare(target, config.seed)
    prepare_seconds = time.perf_counter() - tic
    tic = time.perf_counter()
    images = attack.reconstruct(target, observed, config.seed).float().clamp(0, 1).cpu()
    seconds = time.perf_counter() - tic
    row = {**_common(subject), "kind": "attack", "layer": layer.alias, "layer_name": layer.name,
           "layer_order": layer.order, "feature_shape": layer.shape_text, "feature_values": layer.size,
           "attack": attack_name, "mitigation": mitigation, "utility_accuracy": util,
           **score(images, victims, labels, subject.reid), "seconds": seconds, "prepare_seconds": prepare_seconds}
    log(f"{attack_name} inversion of {layer.alias} ({mitigation}): PSNR {row['psnr']:.1f} dB, SSIM "
        f"{row['ssim']:.3f}, re-id top-1 {row['reid_top1']:.0%} ({seconds:.1f} s)")
    return {"row": row, "images": images, "params": attack.params(), "notes": notes}


def rate_layers(results: pd.DataFrame, subject: AuditSubject) -> pd.DataFrame:
    """One row per audited layer: the worst case over the attacks on its raw features, and its risk."""
    baseline = results[results["kind"] == "baseline"].iloc[0]
    n, chance = len(subject.victim_index), subject.reid.chance
    rows = []
    for layer in subject.layers:
        plain = results[(results["layer_name"] == layer.name) & (results["mitigation"] == "none")
                        & (results["kind"] == "attack")]
        if not len(plain):
            continue  # every attack on this layer failed
        rows.append({"model": subject.model_name, "dataset": subject.spec.name, "layer": layer.alias,
                     "layer_name": layer.name, "layer_order": layer.order, "feature_shape": layer.shape_text,
                     "feature_values": layer.size, **rate_layer(plain, float(baseline["ssim"]), chance, n),
                     "reid_chance": chance, "n": n})
    return pd.DataFrame(rows)


def subject_info(subject: AuditSubject) -> dict[str, Any]:
    """run.json's description of the audited model, victims and re-identification classifier."""
    victims, labels = subject.victims
    reid = subject.reid
    top1, top5 = (float(v.mean()) for v in reid.hits(victims, labels))
    return {"model_source": subject.model_source, "model_name": subject.model_name,
            "clean_accuracy": subject.clean_accuracy,
            "all_layers": [{"name": layer.name, "alias": layer.alias, "shape": layer.shape_text}
                           for layer in subject.all_layers],
            "victims": subject.victim_index.tolist(),
            "reid": {"test_accuracy": reid.test_accuracy, "chance": reid.chance, "what": reid.what,
                     "source": reid.source, **reid.notes, "original_top1": top1, "original_top5": top5}}
