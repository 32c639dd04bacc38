"""A standardised logistic-regression head, fitted with scikit-learn and stored as plain arrays (no pickle)."""
from __future__ import annotations

import numpy as np
import torch


class LinearProbe:
    """score(x) = sigmoid(w · (x − mean) / std + b): the probability that a feature row is fake."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, weight: np.ndarray, bias: float) -> None:
        self.mean, self.std, self.weight, self.bias = mean, std, weight, float(bias)

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, *, c: float = 1.0, seed: int = 0) -> "LinearProbe":
        """L2-regularised logistic regression (inverse strength ``c``) on standardised features."""
        from sklearn.linear_model import LogisticRegression

        mean = features.mean(axis=0)
        std = features.std(axis=0) + 1e-8
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        model.fit((features - mean) / std, labels)
        return cls(mean, std, model.coef_[0].astype(np.float64), float(model.intercept_[0]))

    def score(self, features: np.ndarray) -> np.ndarray:
        logits = ((features - self.mean) / self.std) @ self.weight + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The probe as named tensors, for a safetensors file."""
        return {"mean": torch.from_numpy(self.mean), "std": torch.from_numpy(self.std),
                "weight": torch.from_numpy(self.weight), "bias": torch.tensor([self.bias], dtype=torch.float64)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "LinearProbe":
        return cls(tensors["mean"].numpy(), tensors["std"].numpy(), tensors["weight"].numpy(), tensors["bias"].item())
