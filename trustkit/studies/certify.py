"""The certify study (``trustkit certify``): randomized smoothing (Cohen, Rosenfeld & Kolter 2019) of one or more
models at one or more noise levels σ, with an empirical check of its certificates.

Groups are (model, σ): the Gaussian-trained base model and a seeded sample of test images, resolved once. Its cells

- certify chunks of ``CHUNK`` images each (CERTIFY with N0 selection samples, N estimation samples, level α; the
  same N samples also give PREDICT's answer and the base model's accuracy under noise), so a killed run resumes
  chunk by chunk;
- one consistency check: ℓ2 PGD with EOT on the soft smoothed classifier (Salman et al. 2019) at fractions of each
  certified radius; a point whose smoothed prediction changes under a perturbation smaller than its certified
  radius contradicts the certificate (possible only with the α failure probability) and is flagged.

Each image draws its noise from its own stream (seed, test index, purpose), so the consistency check re-certifies
its images with exactly the numbers of their chunk, and a chunk's numbers do not depend on the chunking.

Defaults: N = 1,000 (not Cohen's 100,000), 200 images. On 2 shared CPU cores the zoo cnn classifies ~2,000-2,500
noisy MNIST images per second (measured, batch 500-2,000) and several times more 8×8 digits, so the default
certifies 200 digits in seconds and 200 MNIST images in ~2 min, where N = 100,000 would take ~2.5 h for MNIST.
The price is reach: no radius above σ·Φ⁻¹(α^(1/N)) can be certified (0.62 at σ = 0.25 with N = 1,000 and
α = 0.001; 0.80 with 10,000; 0.95 with 100,000). The report says which radii the chosen N cannot reach.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from trustkit.certify.smoothing import (ABSTAIN, PREDICTION, Smoothed, max_certifiable_radius, predict_from_counts,
                                        smooth_adversarial)
from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.fingerprint import cache_key, tensor_fingerprint
from trustkit.models.inference import accuracy
from trustkit.models.loading import resolve_model, zoo_arch
from trustkit.runtime import check_run_options, seed_everything
from trustkit.sanity import Check
from trustkit.studies.base import Memo, Progress, RunSettings, StudyOutput, TrainStep
from trustkit.studies.bench_cells import model_fingerprint
from trustkit.studies.certify_results import (ATTACK_COLUMNS, CERTIFICATE_COLUMNS, RESULT_COLUMNS, certify_checks,
                                             curve_rows, radius_grid)
from trustkit.train import format_sigma, gaussian_entry, store_name

CHUNK = 50  # images per certification cell: what a killed run loses at most
@dataclass(frozen=True)
class CertifyConfig(RunSettings):
    """What ``trustkit certify`` runs.

    ``models``: zoo architectures (meaning their Gaussian-trained store entries ``M-D-gaussian-sigmaσ``, trained
    when missing), store entries or checkpoints (used as given at every σ). ``sigmas``: noise levels (pixel
    scale [0, 1]). ``n0`` selection and ``n`` estimation samples per image, ``alpha`` the failure probability of
    each certificate; ``n_images`` seeded test images; ``radii`` the ℓ2 grid of results.csv (default: steps of
    0.25 up to the largest radius ``n`` can certify). The consistency check attacks the first ``attack_n``
    images (0 skips it) at ``attack_fractions`` of each certified radius (those < 1 test the certificate, those
    ≥ 1 show the attack's strength) with ``attack_steps`` PGD steps of ``attack_samples`` noise samples each.
    ``batch_size`` noisy images per forward pass."""

    models: tuple[str, ...] = ("cnn",)
    dataset: str = "digits"
    sigmas: tuple[float, ...] = (0.25,)
    n0: int = 100
    n: int = 1000
    alpha: float = 0.001
    n_images: int = 200
    radii: tuple[float, ...] | None = None
    attack_n: int = 20
    attack_fractions: tuple[float, ...] = (0.5, 0.9, 1.5)
    attack_steps: int = 20
    attack_samples: int = 16
    seed: int = 0
    batch_size: int = 1000


@dataclass(frozen=True)
class CertifyCell:
    """CERTIFY on images ``start:stop`` of the (model, σ) group's sample."""

    model: str
    sigma: float
    start: int
    stop: int

    @property
    def group(self) -> tuple[str, float]:
        return (self.model, self.sigma)

    def title(self) -> str:
        return f"certify {self.model} σ={self.sigma:g} images {self.start}-{self.stop - 1}"


@dataclass(frozen=True)
class AttackCell:
    """The consistency check of the (model, σ) group: attack the smoothed classifier inside its certificates."""

    model: str
    sigma: float

    @property
    def group(self) -> tuple[str, float]:
        return (self.model, self.sigma)

    def title(self) -> str:
        return f"attack smoothed {self.model} σ={self.sigma:g} inside its certified radii"


@dataclass
class CertifyState:
    """One (model, σ) group: the base model on a device, its sample of test images and their test indices."""

    model: torch.nn.Module
    model_name: str
    entry: str
    fingerprint: str | None
    sigma: float
    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    num_classes: int

    def to(self, device: torch.device) -> "CertifyState":
        self.model = self.model.to(device)
        return self

    def data_fingerprint(self, start: int, stop: int) -> str:
        return tensor_fingerprint(self.x[start:stop], self.y[start:stop], self.index[start:stop])


def model_entry(model: str, dataset: str, sigma: float) -> str:
    """What ``model`` means at noise ``sigma``: a zoo architecture its Gaussian-trained store entry
    (``cnn-digits-gaussian-sigma0.25``); anything else (store entry, checkpoint) itself."""
    arch = zoo_arch(model)
    return store_name(arch, get_spec(dataset).name, "gaussian", sigma=sigma) if arch is not None else model


@dataclass
class CertifyStudy:
    """A validated certify configuration as engine cells."""

    config: CertifyConfig
    kind: str = "certify"

    def cells(self) -> Sequence[CertifyCell | AttackCell]:
        config = self.config
        n_images = min(config.n_images, _test_size(config))
        found: list[CertifyCell | AttackCell] = []
        for model in config.models:
            for sigma in config.sigmas:
                found += [CertifyCell(model, sigma, start, min(start + CHUNK, n_images))
                          for start in range(0, n_images, CHUNK)]
                if config.attack_n > 0:
                    found.append(AttackCell(model, sigma))
        return found

    def description(self) -> str:
        return f"certify {', '.join(self.config.models)} on {self.config.dataset}"

    def settings(self) -> dict[str, Any]:
        return {**asdict(self.config), "dataset": get_spec(self.config.dataset).name,
                "radii": radius_grid(self.config.radii, self.config.sigmas, self.config.n, self.config.alpha),
                "radius_limits": {format_sigma(s): max_certifiable_radius(s, self.config.n, self.config.alpha)
                                  for s in self.config.sigmas}}

    def prerequisites(self) -> list[TrainStep]:
        config, dataset = self.config, get_spec(self.config.dataset).name
        steps = []
        for model in config.models:
            for sigma in config.sigmas:
                entry = model_entry(model, dataset, sigma)
                if gaussian_entry(entry, dataset) is not None:  # trained as `trustkit train --noise SIGMA` would
                    steps.append(TrainStep(entry, dataset, config.data_root, config.download))
        return list(dict.fromkeys(steps))

    def prepare(self, cells: Sequence[CertifyCell | AttackCell], device: torch.device) -> CertifyState:
        config, spec = self.config, get_spec(self.config.dataset)
        model, sigma = cells[0].model, cells[0].sigma
        entry = model_entry(model, spec.name, sigma)
        loaded = resolve_model(entry, spec.name, data_root=config.data_root, device=device,
                               trust_code=config.trust_code)
        test_set = load_dataset(spec.name, "test", config.data_root, config.download)
        index = test_set.sample(config.n_images, config.n_images, config.seed)
        x, y = test_set.tensors(index)
        return CertifyState(loaded.module.eval(), model, loaded.name, model_fingerprint(loaded), sigma, x, y, index,
                            spec.num_classes)

    def _numbers(self) -> dict[str, Any]:
        c = self.config
        return {"n0": c.n0, "n": c.n, "alpha": c.alpha, "seed": c.seed, "batch_size": c.batch_size}

    def key(self, cell: CertifyCell | AttackCell, state: CertifyState, device_type: str) -> str | None:
        if state.fingerprint is None:
            return None
        c = self.config
        if isinstance(cell, CertifyCell):
            return cache_key({"certify": "chunk", "sigma": cell.sigma, "range": [cell.start, cell.stop],
                              **self._numbers(), "model": state.fingerprint,
                              "data": state.data_fingerprint(cell.start, cell.stop), "device": device_type})
        k = min(c.attack_n, len(state.x))
        return cache_key({"certify": "attack", "sigma": cell.sigma, **self._numbers(), "attack_n": k,
                          "fractions": list(c.attack_fractions), "steps": c.attack_steps,
                          "samples": c.attack_samples, "model": state.fingerprint,
                          "data": state.data_fingerprint(0, k), "device": device_type})

    def _smoothed(self, state: CertifyState, device: torch.device) -> Smoothed:
        return Smoothed(state.model, state.sigma, batch_size=self.config.batch_size, device=device,
                        num_classes=state.num_classes)

    def run(self, cell: CertifyCell | AttackCell, state: CertifyState, device: torch.device,
            bar: Progress | None) -> dict[str, Any]:
        seed_everything(self.config.seed)
        if isinstance(cell, CertifyCell):
            return self._certify(cell, state, device)
        return self._attack(state, device, bar)

    def _certify(self, cell: CertifyCell, state: CertifyState, device: torch.device) -> dict[str, Any]:
        c, tic = self.config, time.perf_counter()
        x, y, index = state.x[cell.start:cell.stop], state.y[cell.start:cell.stop], state.index[cell.start:cell.stop]
        certificate = self._smoothed(state, device).certify(x, c.n0, c.n, c.alpha, seed=c.seed, index=index)
        predicted = predict_from_counts(certificate.counts, c.alpha)  # PREDICT on the same N samples
        labels = y.numpy()
        noise_accuracy = certificate.counts[np.arange(len(labels)), labels] / c.n
        rows = [{"index": int(i), "label": int(label), "prediction": int(p), "p_lower": float(pl),
                 "radius": float(r), "correct": bool(p == label), "predict": int(q), "noise_accuracy": float(a)}
                for i, label, p, pl, r, q, a in zip(index.tolist(), labels, certificate.prediction,
                                                    certificate.p_lower, certificate.radius, predicted,
                                                    noise_accuracy, strict=True)]
        return {"rows": rows, "seconds": time.perf_counter() - tic}

    def _attack(self, state: CertifyState, device: torch.device, bar: Progress | None) -> dict[str, Any]:
        c, tic = self.config, time.perf_counter()
        k = min(c.attack_n, len(state.x))
        x, index = state.x[:k].to(device), state.index[:k]
        smoothed = self._smoothed(state, device)
        certificate = smoothed.certify(x, c.n0, c.n, c.alpha, seed=c.seed, index=index)
        certified = np.flatnonzero(certificate.prediction != ABSTAIN)
        if bar:
            bar.advance(0.2)
        rows = []
        for j, fraction in enumerate(c.attack_fractions):
            row: dict[str, Any] = {"fraction": float(fraction), "inside": bool(fraction < 1), "images": k,
                                   "attacked": len(certified), "mean_l2": float("nan"),
                                   "max_norm_over_radius": float("nan"), "changed": 0, "abstained": 0,
                                   "violations": 0, "steps": c.attack_steps, "eot_samples": c.attack_samples}
            if len(certified):
                chosen = torch.as_tensor(certified)
                radius = torch.as_tensor(certificate.radius[certified], dtype=torch.float32, device=device)
                target = torch.as_tensor(certificate.prediction[certified], device=device)
                x_adv = smooth_adversarial(state.model, x[chosen], target, fraction * radius, state.sigma,
                                           steps=c.attack_steps, samples=c.attack_samples,
                                           seed=c.seed + 7919 * (j + 1), batch_size=c.batch_size)
                norms = (x_adv - x[chosen]).flatten(1).norm(dim=1)
                counts = smoothed.sample_counts(x_adv, c.n, seed=c.seed, index=index[chosen],
                                                purpose=PREDICTION + 1 + j).numpy()
                after = predict_from_counts(counts, c.alpha)
                changed = (after != ABSTAIN) & (after != certificate.prediction[certified])
                # inside: every perturbation is strictly shorter than its image's certified radius
                inside = (norms < radius).cpu().numpy()
                row.update(mean_l2=float(norms.mean()), max_norm_over_radius=float((norms / radius).max()),
                           changed=int(changed.sum()), abstained=int((after == ABSTAIN).sum()),
                           violations=int((changed & inside).sum()))
            rows.append(row)
            if bar:
                bar.advance(0.8 / len(c.attack_fractions))
        return {"rows": rows, "seconds": time.perf_counter() - tic}

    def portable(self, state: CertifyState) -> CertifyState:
        return state.to(torch.device("cpu"))

    def localize(self, state: CertifyState, device: torch.device) -> CertifyState:
        return state.to(device)

    def finish_group(self, cells: Sequence[CertifyCell | AttackCell], state: CertifyState, device: torch.device,
                     memo: Memo) -> dict[str, Any]:
        return {"model": state.model_name, "entry": state.entry, "sigma": state.sigma, "n_images": len(state.y),
                "base_clean_accuracy": accuracy(state.model, state.x, state.y, batch_size=self.config.batch_size,
                                                device=device),
                "radius_limit": max_certifiable_radius(state.sigma, self.config.n, self.config.alpha)}

    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        c, dataset = self.config, get_spec(self.config.dataset).name
        certificates, attacks = [], []
        for record in output.finished:
            group = output.groups.get(record.cell.group, {})
            head = {"model": record.cell.model, "entry": group.get("entry", model_entry(record.cell.model, dataset,
                                                                                        record.cell.sigma)),
                    "dataset": dataset, "sigma": record.cell.sigma}
            target = certificates if isinstance(record.cell, CertifyCell) else attacks
            target += [{**head, **row} for row in record.data["rows"]]
        certificate_frame = pd.DataFrame(certificates, columns=CERTIFICATE_COLUMNS)
        results = []
        for (model, sigma), group in output.groups.items():
            rows = certificate_frame[(certificate_frame["model"] == model) & (certificate_frame["sigma"] == sigma)]
            results += curve_rows(rows, group, radius_grid(c.radii, c.sigmas, c.n, c.alpha), dataset=dataset,
                                  n0=c.n0, n=c.n, alpha=c.alpha)
        return {"results.csv": pd.DataFrame(results, columns=RESULT_COLUMNS),
                "certificates.csv": certificate_frame,
                "attack.csv": pd.DataFrame(attacks, columns=ATTACK_COLUMNS)}

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Check]:
        c = self.config
        return certify_checks(tables, dataset=c.dataset, sigmas=c.sigmas, n=c.n, alpha=c.alpha, attack_n=c.attack_n,
                              radii=c.radii)

    def group_checks(self, output: StudyOutput) -> list[Check]:
        return []

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        c, dataset = self.config, get_spec(self.config.dataset).name
        models = ", ".join(c.models)
        sigmas = ", ".join(f"{s:g}" for s in c.sigmas)
        return (f"certify-{'+'.join(c.models)[:40]}-{dataset}", f"Certified robustness of {models} on {dataset}",
                f"randomized smoothing · σ {sigmas} · N0 {c.n0}, N {c.n:,}, α {c.alpha:g} · "
                f"{min(c.n_images, _test_size(c))} test images")

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        return {"models": [dict(g) for g in output.groups.values()], "sigmas": list(self.config.sigmas)}


def _test_size(config: CertifyConfig) -> int:
    """Test images of the data set when known without loading it (built-in sets), else the request itself."""
    sizes = {"digits": 360, "mnist": 10_000, "cifar10": 10_000}
    return sizes.get(get_spec(config.dataset).name, config.n_images)


def certify_study(config: CertifyConfig) -> CertifyStudy:
    """Validate ``config`` (models, σ, sample sizes, α, attack settings) before any model is trained or loaded."""
    get_spec(config.dataset)  # an unknown data set fails now, in one line
    if not config.models:
        raise InvalidArgumentError("no model given; name one, e.g. --model cnn")
    if len(set(config.models)) < len(config.models):
        raise InvalidArgumentError(f"a model is named twice in {', '.join(config.models)}; name each model once")
    if not config.sigmas:
        raise InvalidArgumentError("no noise level given; add --sigma, e.g. --sigma 0.25")
    for sigma in config.sigmas:
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise InvalidArgumentError(f"--sigma must be a finite number > 0 (pixel scale [0, 1]), got {sigma}")
    if len(set(config.sigmas)) < len(config.sigmas):
        raise InvalidArgumentError(f"a noise level is given twice in --sigma {', '.join(map(str, config.sigmas))}")
    for name, value in (("--n0", config.n0), ("--n", config.n), ("--n-images", config.n_images),
                        ("--attack-steps", config.attack_steps), ("--attack-samples", config.attack_samples)):
        if not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"{name} must be a whole number of at least 1, got {value}")
    if config.attack_n < 0:
        raise InvalidArgumentError(f"--attack-n must be 0 (skip the consistency check) or more, got {config.attack_n}")
    if not (isinstance(config.alpha, float | int) and 0 < config.alpha < 0.5):
        raise InvalidArgumentError(f"--alpha must lie in (0, 0.5), got {config.alpha}; Cohen et al. use 0.001")
    if not config.attack_fractions and config.attack_n:
        raise InvalidArgumentError("no attack fraction given; add --attack-fraction, e.g. 0.5,0.9")
    for fraction in config.attack_fractions:
        if not (math.isfinite(fraction) and fraction > 0):
            raise InvalidArgumentError(f"--attack-fraction must be > 0 (a multiple of each certified radius), got "
                                       f"{fraction}")
    if config.radii is not None:
        for radius in config.radii:
            if not (math.isfinite(radius) and radius >= 0):
                raise InvalidArgumentError(f"--radius must be a finite number >= 0 (ℓ2, pixel units), got {radius}")
    check_run_options(None, config.batch_size, config.jobs, config.device)
    return CertifyStudy(config)
