"""CNN detector: the zoo ``cnn`` (conv32-pool-conv64-pool-fc128) trained as a real/fake classifier."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import torch

from trustkit.data import ImageDataset, get_spec
from trustkit.detection.base import Detector
from trustkit.models import build_model
from trustkit.models.inference import predict_logits
from trustkit.runtime import prepare_model
from trustkit.train.config import TrainConfig
from trustkit.train.fit import fit

CLASS_NAMES = ("real", "fake")


class CNNDetector(Detector):
    """Trained with the usual trustkit fit loop (SGD, one-cycle LR); ``module`` returns (real, fake) logits."""

    name = "cnn"
    differentiable = True

    def __init__(self, dataset: str, epochs: int = 10, batch_size: int = 64, lr: float = 0.02,
                 arch: str = "cnn") -> None:
        self.dataset, self.epochs, self.batch_size, self.lr, self.arch = dataset, int(epochs), int(batch_size), \
            float(lr), arch
        self.module = self._build()
        # a callable (batch of [0, 1] floats, torch.Generator) -> batch applied to every training batch;
        # None: none (cnn_blur_jpeg sets the CNNDetection protocol's)
        self.augmentation: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    def _build(self) -> torch.nn.Module:
        return build_model(self.arch, replace(get_spec(self.dataset), class_names=CLASS_NAMES)).eval()

    def options(self) -> dict[str, object]:
        return {"dataset": self.dataset, "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "arch": self.arch}

    def fit(self, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0, device: torch.device | None = None) -> None:
        device = device or torch.device("cpu")
        torch.manual_seed(seed)  # the initial weights too: the same seed gives the same detector, whatever ran before
        self.module = prepare_model(self._build(), device)
        config = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, augment=False)
        data = ImageDataset(x, y, name=f"{self.dataset}-real-vs-fake", split="train", class_names=CLASS_NAMES)
        fit(self.module, data, config, device=device, seed=seed, augment=self.augmentation or "none",
            description=f"train {self.name} detector on {self.dataset}")
        self.module.eval()

    def score(self, x: torch.Tensor, *, device: torch.device | None = None) -> np.ndarray:
        device = device or next(self.module.parameters()).device
        images = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        logits = predict_logits(self.module, images, batch_size=256, device=device)
        return logits.softmax(1)[:, 1].double().cpu().numpy()

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(tensors)
        self.module.eval()
