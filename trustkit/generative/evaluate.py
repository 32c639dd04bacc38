"""Score a trained generative model on its data set: domain FID, KID, precision/recall, mode coverage,
conditional agreement (class-conditional models), and ELBO / importance-weighted NLL (VAEs).

Every metric is one tidy row ``{metric, value, unit, n, detail}``; the report and ``results.csv`` show them.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from trustkit.data import ImageDataset, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.generative.base import GenerativeModel
from trustkit.generative.features import FeatureExtractor, domain_feature_net
from trustkit.generative.likelihood import batched, binarize, elbo, importance_weighted_log_likelihood, mean_loss
from trustkit.generative.metrics import (ModeCoverage, conditional_agreement, frechet_distance,
                                         kernel_inception_distance, mode_coverage, precision_recall)

CONFIDENCE = 0.9  # "labelled as the asked class with >= 90% confidence"


@dataclass(frozen=True)
class GenEvalConfig:
    """What to measure and on how much.

    ``n``: generated samples (and at most as many real test images) for the feature metrics; ``k``: the
    neighbour of precision/recall; ``kid_subsets``/``kid_subset_size``: KID's subsets; ``nll_images``: test
    images for the VAE likelihood (None: the whole test split); ``iw_samples``: K of the importance-weighted
    bound; ``classifier``: zoo model whose penultimate features define the domain FID.
    """

    n: int = 2000
    k: int = 3
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    nll_images: int | None = 2000
    iw_samples: int = 100
    classifier: str = "cnn"
    seed: int = 0
    batch_size: int = 500

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> "GenEvalConfig":
        if self.n < 10:
            raise InvalidArgumentError(f"--n must be at least 10 for the sample metrics, got {self.n}")
        if self.iw_samples < 1:
            raise InvalidArgumentError(f"--iw-samples must be at least 1, got {self.iw_samples}")
        if self.nll_images is not None and self.nll_images < 1:
            raise InvalidArgumentError(f"--nll-images must be at least 1, got {self.nll_images}")
        return self


@dataclass
class GenEvaluation:
    """Metric rows, the class histogram of samples, per-class conditional agreement and a few samples."""

    rows: list[dict[str, Any]]
    coverage: ModeCoverage | None
    class_names: tuple[str, ...]
    per_class: list[dict[str, Any]] = field(default_factory=list)
    feature_net: str = ""
    seconds: float = 0.0

    def value(self, metric: str) -> float | None:
        return next((r["value"] for r in self.rows if r["metric"] == metric), None)


def _row(metric: str, value: float, unit: str, n: int, detail: str) -> dict[str, Any]:
    return {"metric": metric, "value": float(value), "unit": unit, "n": int(n), "detail": detail}


def _subset(dataset: ImageDataset, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    count = min(n, len(dataset))
    index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count].sort().values
    return dataset.tensors(index)


def sample_balanced(model: GenerativeModel, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples in [0, 1] from a fixed seed; conditional models get balanced class labels."""
    labels = model.default_labels(n)
    images = model.sample(n, labels, generator=torch.Generator().manual_seed(seed))
    return images, None if labels is None else labels.cpu()


def likelihood_rows(model: GenerativeModel, test_set: ImageDataset, config: GenEvalConfig,
                    device: torch.device) -> list[dict[str, Any]]:
    """Test ELBO and importance-weighted NLL (nats per image) of a VAE on (binarised) test images."""
    count = len(test_set) if config.nll_images is None else min(config.nll_images, len(test_set))
    x, y = test_set.tensors(torch.arange(count))
    generator = torch.Generator().manual_seed(config.seed)
    target = binarize(x, generator) if model.binarize else x
    labels = y if model.conditional else None
    model.eval()
    data = f"{'stochastically binarised ' if model.binarize else ''}{test_set.name} test images (first {count})"
    if not model.binarize:  # Bernoulli cross-entropy of grey levels is not a density of continuous pixels
        data += "; continuous pixels: a cross-entropy, not a true likelihood, so compare models only"
    lower = batched(lambda xb, yb: elbo(model, xb, yb, generator), target, labels, config.batch_size, device)
    bound = batched(lambda xb, yb: importance_weighted_log_likelihood(model, xb, yb, k=config.iw_samples,
                                                                      generator=generator),
                    target, labels, max(1, config.batch_size // 5), device)
    return [_row("test_elbo", lower.mean(), "nats/image", count, f"one-sample ELBO on {data}"),
            _row("test_nll_iw", -bound.mean(), "nats/image", count,
                 f"−log p(x) bound with K={config.iw_samples} importance samples on {data}")]


def evaluate_generator(model: GenerativeModel, dataset: str, *, config: GenEvalConfig | None = None,
                       data_root: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                       feature_net: FeatureExtractor | None = None) -> GenEvaluation:
    """Measure ``model`` against the test split of ``dataset`` (see module doc)."""
    config = (config or GenEvalConfig()).validate()
    started = time.perf_counter()
    test_set = load_dataset(dataset, "test", data_root)
    train_set = load_dataset(dataset, "train", data_root)
    if feature_net is None:
        feature_net, _ = domain_feature_net(dataset, classifier=config.classifier, data_root=data_root, device=device)
    model_device = model.device
    net = f"{feature_net.name} penultimate layer ({feature_net.dim}-d)"

    x_real, _ = _subset(test_set, config.n, config.seed)
    x_train, _ = _subset(train_set, len(x_real), config.seed + 1)
    samples, asked = sample_balanced(model, config.n, config.seed + 2)
    real = feature_net(x_real, config.batch_size)
    train = feature_net(x_train, config.batch_size)
    fake = feature_net(samples, config.batch_size)

    n_real, n_fake = len(x_real), len(samples)
    sizes = f"{n_fake} samples vs {n_real} test images"
    kid_generator = torch.Generator().manual_seed(config.seed)
    kid, kid_std = kernel_inception_distance(real.features, fake.features, subsets=config.kid_subsets,
                                             subset_size=config.kid_subset_size, generator=kid_generator)
    precision, recall = precision_recall(real.features, fake.features, k=config.k)
    coverage = mode_coverage(fake.probabilities.argmax(1), len(test_set.class_names))
    rows = [
        _row("domain_fid", frechet_distance(real.features, fake.features), "", n_fake,
             f"Fréchet distance on {net}, {sizes}; not comparable with Inception FIDs"),
        _row("domain_fid_real_floor", frechet_distance(real.features, train.features), "", len(x_train),
             f"same distance between {len(x_train)} real train and {n_real} test images: the floor to compare with"),
        _row("kid", kid, "", n_fake, f"unbiased MMD², cubic kernel on {net}, {config.kid_subsets} subsets "
             f"of {min(config.kid_subset_size, n_real, n_fake)}; ± {kid_std:.2g} (std over subsets)"),
        _row("precision", precision, "fraction", n_fake, f"Kynkäänniemi et al. 2019, k={config.k}: samples inside "
             "the real manifold (fidelity)"),
        _row("recall", recall, "fraction", n_real, f"k={config.k}: test images inside the sample manifold (diversity)"),
        _row("modes_covered", coverage.modes_covered, "classes", n_fake,
             f"classes (of {coverage.num_classes}) given ≥ 10% of their uniform share of samples by {feature_net.name}"),
        _row("kl_to_uniform", coverage.kl_to_uniform, "nats", n_fake,
             f"KL(class histogram of samples ‖ uniform); 0 = balanced, {math.log(coverage.num_classes):.2f} = one class"),
    ]
    per_class: list[dict[str, Any]] = []
    if asked is not None:
        agreement = conditional_agreement(fake.probabilities, asked, CONFIDENCE)
        rows += [_row("conditional_accuracy", agreement["accuracy"], "fraction", n_fake,
                      f"samples that {feature_net.name} labels as the class they were generated for"),
                 _row("conditional_confident", agreement["confident"], "fraction", n_fake,
                      f"… labelled so with ≥ {CONFIDENCE:.0%} confidence")]
        for label, name in enumerate(test_set.class_names):
            chosen = asked == label
            if chosen.any():
                part = conditional_agreement(fake.probabilities[chosen], asked[chosen], CONFIDENCE)
                per_class.append({"class_name": name, "n": int(chosen.sum()), **part})
    if model.kind == "vae":
        rows += likelihood_rows(model, test_set, config, model_device)
    if model.kind == "autoencoder":
        x, y = test_set.tensors(torch.arange(min(config.n, len(test_set))))
        model.eval()
        with torch.no_grad():
            loss = mean_loss(model, x, y, model_device)
        rows.append(_row("test_reconstruction_mse", loss, "on [-1, 1] pixels", len(x),
                         "mean squared reconstruction error of test images"))
    return GenEvaluation(rows, coverage, tuple(test_set.class_names), per_class, feature_net.name,
                         time.perf_counter() - started)
