"""Training hyper-parameters and the per-(model, data set) defaults that ``bench`` and ``train`` use."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """How a classifier is fit.

    ``lr`` is the peak learning rate of the cyclic ``schedule`` (one-cycle, or the triangle of fast AT); ``weight_decay`` is L2 on all weights;
    ``recipe`` names the training loss: "clean" (cross-entropy on the data as is) or an adversarial recipe
    ("fast", "n-fgsm", "fgsm-rs", "pgd", "trades") at budget ``eps`` (linf, pixel scale [0, 1]) with step ``alpha``
    (default per recipe), ``attack_steps`` iterations (fast, pgd, trades), TRADES weight ``beta`` and N-FGSM noise
    magnitude ``noise`` (a multiple of eps); "gaussian" is cross-entropy on x + ``sigma``·N(0, I), the base model of
    randomized smoothing (not adversarial: no guard). Adversarial recipes hold out ``validation_size`` training images and
    keep the epoch with the best robust accuracy on them — per image the worst case of PGD-10 and of a Square
    attack of ``guard_queries`` queries (score-based, so gradient masking cannot fool it; 0: PGD-10 alone) — the
    guard against catastrophic overfitting.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum 0.9) or "adam"
    schedule: str = "one-cycle"  # "one-cycle" (cosine, momentum cycled) or "triangle" (linear 0 -> lr at 40% -> 0)
    weight_decay: float = 5e-4
    recipe: str = "clean"
    augment: bool = True  # use the data set's augmentation (crop-flip for CIFAR-10; none for digits)
    amp: bool = True  # bfloat16 autocast on CUDA (ignored on CPU)
    eps: float = 0.0
    alpha: float | None = None
    attack_steps: int = 10
    beta: float = 6.0
    noise: float = 2.0  # n-fgsm: uniform noise in [-noise·eps, noise·eps]
    eps_warmup: float = 0.0  # epochs over which the training budget rises linearly from 0 to eps
    validation_size: int = 512
    guard_queries: int = 300  # Square queries per held-out image in the epoch guard (p_init 0.8)
    compile: bool = False  # torch.compile the model (CUDA; slower to start, faster per step)
    sigma: float = 0.0  # gaussian: standard deviation of the training noise (pixel scale [0, 1])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **overrides: Any) -> "TrainConfig":
        """A copy with every override that is not None applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


# Measured on 2 CPU cores: digits resnet ~2.5 s/epoch, mnist cnn ~25 s/epoch, cifar10 resnet ~18 min/epoch.
_DEFAULTS: dict[tuple[str, str], TrainConfig] = {
    ("softmax", "digits"): TrainConfig(epochs=30, batch_size=64, lr=0.1, weight_decay=0.0),
    ("mlp", "digits"): TrainConfig(epochs=30, batch_size=64, lr=0.05),
    ("cnn", "digits"): TrainConfig(epochs=30, batch_size=64, lr=0.05),
    ("resnet", "digits"): TrainConfig(epochs=5, batch_size=64, lr=0.05),  # 5 seeds: 97.8-98.9% (8 epochs: 97.5-99.2%)
    ("softmax", "mnist"): TrainConfig(epochs=5, batch_size=128, lr=0.1, weight_decay=0.0),
    ("mlp", "mnist"): TrainConfig(epochs=5, batch_size=128, lr=0.05),
    ("cnn", "mnist"): TrainConfig(epochs=3, batch_size=128, lr=0.05),
    ("cnn-small", "mnist"): TrainConfig(epochs=3, batch_size=128, lr=0.05),
    ("resnet", "mnist"): TrainConfig(epochs=2, batch_size=128, lr=0.05),
    ("softmax", "cifar10"): TrainConfig(epochs=10, batch_size=256, lr=0.02, weight_decay=0.0),
    ("mlp", "cifar10"): TrainConfig(epochs=20, batch_size=256, lr=0.05),
    ("cnn", "cifar10"): TrainConfig(epochs=20, batch_size=128, lr=0.05),
    ("resnet", "cifar10"): TrainConfig(epochs=30, batch_size=128, lr=0.1),
    ("resnet20", "digits"): TrainConfig(epochs=15, batch_size=64, lr=0.05),
    ("resnet20", "mnist"): TrainConfig(epochs=2, batch_size=128, lr=0.05),
    ("resnet20", "cifar10"): TrainConfig(epochs=15, batch_size=128, lr=0.1),
    ("preact-resnet18", "cifar10"): TrainConfig(epochs=15, batch_size=128, lr=0.2),
    # The GAN lab's discriminator alone: Adam peaking at 1e-3 on the zoo's one-cycle schedule, not yet validated by a
    # full (GPU) run. 2 CPU cores: 2.2 s per batch of 128 when the machine is quiet, ~14 min per CIFAR-10 epoch.
    ("disc196", "cifar10"): TrainConfig(epochs=15, batch_size=128, lr=1e-3, optimizer="adam", weight_decay=0.0),
    ("disc196", "mnist"): TrainConfig(epochs=2, batch_size=128, lr=1e-3, optimizer="adam", weight_decay=0.0),
    ("softmax", "olivetti"): TrainConfig(epochs=60, batch_size=32, lr=0.1, weight_decay=0.0),
    ("mlp", "olivetti"): TrainConfig(epochs=60, batch_size=32, lr=0.05),  # 100% test accuracy, ~3 s
    ("cnn", "olivetti"): TrainConfig(epochs=30, batch_size=32, lr=1e-3, optimizer="adam", weight_decay=0.0),  # 98.8%, ~35 s
}


# Adversarial training: Wong et al. 2020 (fast AT) use Adam, cyclic LR peaking at 5e-3 and 10 epochs on MNIST.
_ADVERSARIAL: dict[tuple[str, str], dict[str, Any]] = {
    ("cnn", "mnist"): {"epochs": 10, "optimizer": "adam", "lr": 5e-3, "weight_decay": 0.0},
    ("cnn", "digits"): {"epochs": 40},
    # Wong et al.'s own MNIST recipe for their network: batch 100, Adam, cyclic LR to 5e-3, 10 epochs.
    ("cnn-small", "mnist"): {"epochs": 10, "batch_size": 100, "optimizer": "adam", "lr": 5e-3, "weight_decay": 0.0,
                             "schedule": "triangle"},
}


# One recipe on one (model, data set), over the settings above; measured with benchmarks/fast_at_mnist.py at eps 0.3
# (seed 0, first 500 test images, worst case of PGD-50×10, APGD-CE, APGD-T and Square-2000 p_init 0.8):
# - N-FGSM with the paper's noise 2·eps (training perturbations up to 0.9) never became robust (validation ~50%,
#   then catastrophic overfitting); noise 1·eps trains, but the model masks its gradients more the longer it trains
#   (6 epochs: worst case 65.8%, 10 epochs: 52.6%, Square far below PGD). Without the eps warm-up it does not learn.
# - PGD-3 (alpha 2.5·eps/3) for 6 epochs: worst case 87.8%, validation Square within 1 point of PGD; PGD-10 89.4%.
#   Eight epochs of it are the 'fast' recipe on this network.
_RECIPE: dict[tuple[str, str, str], dict[str, Any]] = {
    ("cnn-small", "mnist", "n-fgsm"): {"noise": 1.0, "eps_warmup": 1.0, "epochs": 6},
    ("cnn-small", "mnist", "fast"): {"epochs": 8},
}

# Recipe settings on every (model, data set), before the per-model rows above.
_RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "fast": {"attack_steps": 3, "eps_warmup": 1.0},
}

# Gaussian-noise training (randomized smoothing's base models) on top of the clean defaults: noisy inputs need
# more epochs than clean ones to fit.
_GAUSSIAN: dict[tuple[str, str], dict[str, Any]] = {
    ("cnn", "mnist"): {"epochs": 10},
    ("cnn", "digits"): {"epochs": 40},
}
