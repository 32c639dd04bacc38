"""The privacy audit: how much of a private input can be rebuilt from a model's intermediate features, and
what the model gives away about its training set.

:func:`audit_model` loads the target classifier and the data set, picks the victims (test images neither the
target nor the re-identification classifier trained on), and for every audited layer runs the feature-inversion
attacks, scores the reconstructions (PSNR, SSIM, re-identification top-1/top-5 against chance) and rates the
layer's risk. It adds a mean-image baseline, the split-layer mitigation curve, membership inference and MIFace
model inversion (``trustkit.privacy.membership`` / ``model_inversion``, when present), sanity checks, and writes
the report folder (``trustkit.report.privacy``, written by ``trustkit.engine.run_audit``).

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
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import torch

from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.models.loading import resolve_model
from trustkit.privacy.inverse_net import InverseNetworkAttack, model_fingerprint
from trustkit.privacy.inversion import DEFAULT_PRIOR, GenerativePriorInversion, InversionAttack, InversionTarget, WhiteBoxInversion
from trustkit.privacy.layers import FeatureExtractor, LayerInfo, describe_layers, frozen, resolve_layers
from trustkit.privacy.metrics import UNRECOGNISABLE_SSIM, psnr, ssim
from trustkit.privacy.mitigations import DEFAULT_MITIGATIONS, feature_stats, make_transform, parse_mitigation, utility
from trustkit.privacy.reid import ReidClassifier, load_reid
from trustkit.registry import Registry
from trustkit.runtime import log, seed_everything, select_device
from trustkit.privacy.risk import audit_checks, rate_layer
from trustkit.sanity import Check
from trustkit.train.zoo import ensure_trained

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
    trust_code: bool = False  # the user's consent to a model that is code (package.module:factory)

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
        if self.tv_weight < 0 or not math.isfinite(self.tv_weight):
            raise InvalidArgumentError(f"--tv-weight must be a finite number >= 0, got {self.tv_weight}")
        for text in self.mitigations:
            parse_mitigation(text)
        return self


@dataclass
class AuditResult:
    """What an audit produced: tidy frames, images for the galleries, figures' inputs, checks, timings."""

    config: AuditConfig
    results: pd.DataFrame  # one row per (layer, attack, mitigation) plus baseline rows
    layers: pd.DataFrame  # one row per audited layer: worst-case leakage and risk rating
    membership: pd.DataFrame
    model_inversion: pd.DataFrame
    victims: torch.Tensor
    victim_labels: torch.Tensor
    reconstructions: dict[tuple[str, str], torch.Tensor]  # (layer alias, attack) -> N×C×H×W, no mitigation
    mitigation_images: dict[str, torch.Tensor]
    checks: list[Check]
    timings: dict[str, float]
    info: dict[str, Any]
    membership_result: Any = None
    model_inversion_result: Any = None
    real_means: torch.Tensor | None = None
    report: Any = None  # path of the run folder once written


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


def _attack(name: str, config: AuditConfig, image_pixels: int) -> InversionAttack:
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


def _membership(model: torch.nn.Module, train_set: Any, test_set: Any, config: AuditConfig,
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


def _model_inversion(model: torch.nn.Module, spec: Any, reid: ReidClassifier | None, config: AuditConfig,
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


def audit_model(config: AuditConfig) -> AuditResult:
    """Run the whole audit (module doc) and write the report folder; returns the frames and the folder."""
    config.validate()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    spec = get_spec(config.dataset)
    device = select_device(config.device)
    train_set = load_dataset(spec.name, "train", config.data_root, config.download)
    test_set = load_dataset(spec.name, "test", config.data_root)
    ensure_trained(config.model, spec.name, device=device, data_root=config.data_root, download=config.download)
    loaded = resolve_model(config.model, spec.name, data_root=config.data_root, device=device,
                           download=config.download, trust_code=config.trust_code)
    model = loaded.module.eval()
    all_layers = describe_layers(model, spec.shape)
    layers = resolve_layers(all_layers, config.layers)
    # resolved now so that a wrong name fails in one line before any work is done
    mitigation_layer = resolve_layers(all_layers, [config.mitigation_layer])[0] if config.mitigation_layer else layers[0]
    seed_everything(config.seed)
    n = min(config.n or DEFAULT_N.get(spec.name, FALLBACK_N), len(test_set))
    x_test, y_test = test_set.tensors()
    victim_index = pick_victims(y_test, n, config.seed)
    victims, victim_labels = x_test[victim_index], y_test[victim_index]
    aux_images, _ = train_set.tensors()
    timings["load"] = time.perf_counter() - started

    t0 = time.perf_counter()
    pixels = spec.shape[1] * spec.shape[2]
    reid = load_reid(train_set, test_set, steps=config.reid_steps or (1500 if pixels <= 1024 else 800),
                     seed=config.seed, device=device)
    original_top1, original_top5 = (float(v.mean()) for v in reid.hits(victims, victim_labels))
    timings["reid_classifier"] = time.perf_counter() - t0

    with frozen(model):
        clean_accuracy = utility(model, layers[0], None, x_test, y_test, device)
    fingerprint = model_fingerprint(model)
    common = {"model": loaded.name, "dataset": spec.name, "n": n, "seed": config.seed}
    rows: list[dict[str, Any]] = []
    mean_image = aux_images.mean(0, keepdim=True).expand_as(victims)
    rows.append({**common, "kind": "baseline", "layer": "-", "layer_name": "-", "layer_order": -1, "feature_shape": "-",
                 "feature_values": 0, "attack": "mean-image", "mitigation": "none", "utility_accuracy": clean_accuracy,
                 **score(mean_image, victims, victim_labels, reid), "seconds": 0.0})
    rows.append({**common, "kind": "original", "layer": "-", "layer_name": "-", "layer_order": -1,
                 "feature_shape": "-", "feature_values": 0, "attack": "original", "mitigation": "none",
                 "utility_accuracy": clean_accuracy, "psnr": float("inf"), "psnr_std": 0.0, "ssim": 1.0,
                 "ssim_std": 0.0, "unrecognisable": 0.0, "reid_top1": original_top1, "reid_top5": original_top5,
                 "seconds": 0.0})

    attacks = {name: _attack(name, config, pixels) for name in config.attacks}
    reconstructions: dict[tuple[str, str], torch.Tensor] = {}
    prepare_notes: dict[str, Any] = {}

    def target_for(layer: LayerInfo, transform: Any = None, transform_name: str = "") -> InversionTarget:
        return InversionTarget(model, loaded.name, spec.name, layer, spec.shape, aux_images, fingerprint, device,
                               config.data_root, transform, transform_name)

    def attack_row(layer: LayerInfo, name: str, target: InversionTarget, mitigation: str,
                   observed: torch.Tensor, util: float) -> tuple[dict[str, Any], torch.Tensor]:
        attack = attacks[name]
        t_prepare = time.perf_counter()
        notes = attack.prepare(target, config.seed)
        prepare_seconds = time.perf_counter() - t_prepare
        t_attack = time.perf_counter()
        images = attack.reconstruct(target, observed, config.seed).float().clamp(0, 1)
        seconds = time.perf_counter() - t_attack
        prepare_notes[f"{name}/{layer.alias}/{mitigation}"] = notes
        row = {**common, "kind": "attack", "layer": layer.alias, "layer_name": layer.name, "layer_order": layer.order,
               "feature_shape": layer.shape_text, "feature_values": layer.size, "attack": name, "mitigation": mitigation,
               "utility_accuracy": util, **score(images, victims, victim_labels, reid), "seconds": seconds,
               "prepare_seconds": prepare_seconds}
        return row, images

    t0 = time.perf_counter()
    for layer in layers:
        target = target_for(layer)
        with frozen(model), torch.no_grad():
            features = FeatureExtractor(model, layer)(victims.to(device)).detach()
        for name in config.attacks:
            log(f"{name} inversion of {layer.label}, {layer.shape_text} features, {n} victims")
            row, images = attack_row(layer, name, target, "none", features, clean_accuracy)
            rows.append(row)
            reconstructions[(layer.alias, name)] = images
            log(f"  PSNR {row['psnr']:.1f} dB, SSIM {row['ssim']:.3f}, re-id top-1 {row['reid_top1']:.0%} "
                f"({row['seconds']:.1f} s)")
    timings["inversion"] = time.perf_counter() - t0

    # The split-layer mitigation curve, against the attacks that make sense on damaged features.
    mitigation_images: dict[str, torch.Tensor] = {}
    t0 = time.perf_counter()
    if config.mitigations:
        layer = mitigation_layer
        stats = feature_stats(model, layer, aux_images, device)
        for k, text in enumerate(config.mitigations):
            mitigation = parse_mitigation(text)
            transform = make_transform(mitigation, stats, config.seed + 1000 * k)
            util = utility(model, layer, make_transform(mitigation, stats, config.seed + 1000 * k + 1),
                           x_test, y_test, device)
            with frozen(model), torch.no_grad():
                observed = FeatureExtractor(model, layer, transform)(victims.to(device)).detach()
            target = target_for(layer, make_transform(mitigation, stats, config.seed + 1000 * k + 2), mitigation.name)
            for name in config.attacks:
                if name == "gen-prior":
                    continue  # same matching objective as white-box through G; one optimisation attacker suffices
                log(f"{name} inversion of {layer.alias} under {mitigation.name} (utility {util:.1%})")
                row, images = attack_row(layer, name, target, mitigation.name, observed, util)
                rows.append(row)
                if name == "white-box":
                    mitigation_images[mitigation.name] = images
    timings["mitigations"] = time.perf_counter() - t0

    results = pd.DataFrame(rows)
    baseline = results[results["kind"] == "baseline"].iloc[0]
    layer_rows = []
    for layer in layers:
        plain = results[(results["layer_name"] == layer.name) & (results["mitigation"] == "none")
                        & (results["kind"] == "attack")]
        layer_rows.append({"model": loaded.name, "dataset": spec.name, "layer": layer.alias, "layer_name": layer.name,
                           "layer_order": layer.order, "feature_shape": layer.shape_text, "feature_values": layer.size,
                           **rate_layer(plain, float(baseline["ssim"]), reid.chance, n),
                           "reid_chance": reid.chance, "n": n})
    layer_frame = pd.DataFrame(layer_rows)
    results["reid_chance"] = reid.chance
    results["reid_target"] = reid.what

    t0 = time.perf_counter()
    membership_result, membership, membership_note = (None, pd.DataFrame(), "not requested")
    if config.membership:
        membership_result, membership, membership_note = _membership(model, train_set, test_set, config, device)
    timings["membership"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    mi_result, mi_frame, mi_note = (None, pd.DataFrame(), "not requested")
    real_means = None
    if config.model_inversion:
        mi_result, mi_frame, mi_note = _model_inversion(model, spec, reid, config, device)
        if mi_result is not None:
            x_train, y_train = train_set.tensors()
            real_means = torch.stack([x_train[y_train == c].mean(0) for c in mi_result.classes])
    timings["model_inversion"] = time.perf_counter() - t0

    checks = audit_checks(results, layer_frame, reid, original_top1, n)
    timings["total"] = time.perf_counter() - started
    info = {"model_source": loaded.source, "model_name": loaded.name, "clean_accuracy": clean_accuracy,
            "all_layers": [{"name": layer.name, "alias": layer.alias, "shape": layer.shape_text} for layer in all_layers],
            "victims": victim_index.tolist(), "reid": {"test_accuracy": reid.test_accuracy, "chance": reid.chance,
                                                       "what": reid.what, "source": reid.source, **reid.notes,
                                                       "original_top1": original_top1, "original_top5": original_top5},
            "attack_params": {name: attack.params() for name, attack in attacks.items()},
            "attack_notes": prepare_notes, "membership_note": membership_note, "model_inversion_note": mi_note,
            "device": device, "config": asdict(config)}
    result = AuditResult(config, results, layer_frame, membership, mi_frame, victims, victim_labels, reconstructions,
                         mitigation_images, checks, timings, info, membership_result, mi_result, real_means)
    return result
