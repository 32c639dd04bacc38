"""Re-identification: an independent classifier that names the person (or class) shown in a reconstruction.

PSNR and SSIM say how close a reconstruction is pixel by pixel; re-identification asks the question that
matters for privacy: *can the attacker tell who it is?* An identity classifier is trained on the data set's
labels (on Olivetti: the 40 people) and asked to name each reconstruction; top-1 / top-5 accuracy is compared
with chance (1/40 = 2.5% on Olivetti).

Which images it sees (the choice that keeps the number honest):

- It trains on the **training split only** — on Olivetti the fixed 8 photos per person, the attacker's
  "gallery" of known faces. The audit's victims are drawn from the **test split** (2 other photos per person),
  which neither this classifier nor the target model ever saw. A correct name therefore means the reconstruction
  looks like *that person*, not that the classifier memorised the victim's exact picture.
- It is **independent of the target model**: another architecture (strided convolutions, batch norm, global
  pooling), its own seed, trained with augmentation (shifts, flips on faces, contrast jitter, noise, blur) so that
  blurry or noisy reconstructions still land on a face it knows. Using the target model itself would reward
  white-box reconstructions that merely match its features (adversarial, unrecognisable images).

On other data sets the labels are classes (digits, UTKFace gender, CIFAR-10 objects), so the same classifier
measures *class* recognisability (chance 1/K), reported as such. It is cached in the store as ``reid-<dataset>`` (safetensors + JSON).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trustkit.data import ImageDataset, get_spec
from trustkit.errors import CheckpointError, InvalidArgumentError
from trustkit.models.inference import predict_logits
from trustkit.models.layers import Normalize
from trustkit.models.store import checkpoint_exists, read_checkpoint, save_checkpoint, store_path
from trustkit.privacy.metrics import topk_hits
from trustkit.runtime import log, progress

KIND = "reid"
IDENTITY_DATASETS = ("olivetti",)  # labels are people; elsewhere they are classes (digits, UTKFace gender ...)
FLIP_DATASETS = ("olivetti", "faces", "cifar10")  # a mirror image keeps the label (not so for digits)


class ReidNet(nn.Module):
    """Identity classifier: three 3×3 convs (24, 32/2, 64/2; the first also strides 2 on images of 32 px or
    more, which keeps 64×64 faces cheap on a CPU) with batch norm, global average pooling to 2×2, dropout,
    linear. Takes [0, 1] images (normalisation inside), returns logits N×K."""

    def __init__(self, shape: tuple[int, int, int], num_classes: int, mean: tuple[float, ...],
                 std: tuple[float, ...]) -> None:
        super().__init__()
        channels = shape[0]

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.normalize = Normalize(mean, std)
        first_stride = 2 if min(shape[1:]) >= 32 else 1
        self.net = nn.Sequential(*block(channels, 24, first_stride), *block(24, 32, 2), *block(32, 64, 2),
                                 nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.3), nn.Linear(256, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


@dataclass
class ReidClassifier:
    """A trained re-identification classifier and what it is worth: ``test_accuracy`` on the held-out test
    split (fraction; the ceiling a reconstruction can reach), ``chance`` = 1/K."""

    model: nn.Module
    dataset: str
    num_classes: int
    test_accuracy: float
    identity: bool  # True: labels are people; False: classes (digits)
    source: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes

    @property
    def what(self) -> str:
        return "identity" if self.identity else "class"

    @torch.no_grad()
    def hits(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image: (top-1 hit, top-5 hit) as 0/1 floats for images N×C×H×W in [0, 1] with true ``labels``."""
        logits = predict_logits(self.model, images, batch_size=batch_size).cpu()
        return topk_hits(logits, labels.cpu(), 1), topk_hits(logits, labels.cpu(), 5)


def _augment(x: torch.Tensor, generator: torch.Generator, flips: bool) -> torch.Tensor:
    """Shifts of up to 1/16 of the side (at least 1 px), flips (faces), contrast ±20%, blur and noise: the
    kinds of damage reconstructions show."""
    n, _, h, _ = x.shape
    pad = max(1, h // 16)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy, dx = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
    x = padded[..., dy:dy + h, dx:dx + x.shape[-1]]  # one shift per batch: cheap and enough here
    if flips:
        flip = torch.rand(n, generator=generator) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = (0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=generator)).to(x.device)
    x = (x - mean) * contrast + mean
    if float(torch.rand((), generator=generator)) < 0.5 and min(x.shape[-2:]) >= 16:  # box blur, 3 or 5 px
        k = 3 if float(torch.rand((), generator=generator)) < 0.5 else 5
        x = F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)
    sigma = 0.05 * float(torch.rand((), generator=generator))
    x = x + sigma * torch.randn(x.shape, generator=generator).to(x.device)
    return x.clamp(0, 1)


def train_reid(train_set: ImageDataset, test_set: ImageDataset, *, steps: int = 1500, batch_size: int = 64,
               lr: float = 2e-3, seed: int = 0, device: torch.device | str = "cpu") -> ReidClassifier:
    """Train a :class:`ReidNet` for ``steps`` Adam steps (cosine lr) on ``train_set`` with augmentation; its
    accuracy on ``test_set`` is recorded. The seed is offset so it never equals the target model's init."""
    if steps < 1 or batch_size < 1:
        raise InvalidArgumentError(f"the re-identification classifier needs steps and batch size >= 1, got "
                                   f"{steps}, {batch_size}")
    spec = get_spec(train_set.name)
    device = torch.device(device)
    started = time.perf_counter()
    torch.manual_seed(seed + 7919)  # independent of the target model's initialisation (seed)
    generator = torch.Generator().manual_seed(seed + 7919)
    model = ReidNet(spec.shape, spec.num_classes, spec.mean, spec.std).to(device)
    x_train, y_train = train_set.tensors()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    flips = spec.name in FLIP_DATASETS
    model.train()
    with progress(f"train re-identification classifier on {spec.name}", steps) as bar:
        for _ in range(steps):
            index = torch.randint(0, len(x_train), (min(batch_size, len(x_train)),), generator=generator)
            x = _augment(x_train[index].to(device), generator, flips)
            loss = F.cross_entropy(model(x), y_train[index].to(device), label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.advance()
    model.eval()
    reid = ReidClassifier(model, spec.name, spec.num_classes, 0.0, spec.name in IDENTITY_DATASETS)
    x_test, y_test = test_set.tensors()
    top1, _ = reid.hits(x_test, y_test)
    reid.test_accuracy = float(top1.mean())
    seconds = time.perf_counter() - started
    reid.notes = {"train_seconds": round(seconds, 2), "steps": steps, "train_images": len(x_train),
                  "test_images": len(x_test), "seed": seed, "cached": False}
    log(f"re-identification classifier for {spec.name}: {reid.test_accuracy:.1%} top-1 on the {len(x_test)} "
        f"held-out test images ({seconds:.1f} s)")
    return reid


def load_reid(train_set: ImageDataset, test_set: ImageDataset, *, steps: int = 1500, seed: int = 0,
              device: torch.device | str = "cpu", cache: bool = True) -> ReidClassifier:
    """The re-identification classifier for ``train_set``'s data set: from the store entry ``reid-<dataset>``
    when it was trained with the same steps and seed, else trained now (and stored when ``cache``)."""
    spec = get_spec(train_set.name)
    path = store_path(f"{KIND}-{spec.name}")
    options = {"steps": steps, "seed": seed, "train_images": len(train_set), "arch": "reidnet-v2"}
    if cache and checkpoint_exists(path):
        try:
            weights, meta = read_checkpoint(path)  # one open: weights and metadata of the same version
            if meta.get("kind") == KIND and meta.get("options") == options:
                model = ReidNet(spec.shape, spec.num_classes, spec.mean, spec.std)
                model.load_state_dict(weights, strict=True)
                return ReidClassifier(model.to(device).eval(), spec.name, spec.num_classes,
                                      float(meta["test_accuracy"]), spec.name in IDENTITY_DATASETS, str(path),
                                      {**meta.get("notes", {}), "cached": True})
        except (CheckpointError, RuntimeError, KeyError, ValueError):
            pass  # unreadable or stale: retrain and overwrite
    reid = train_reid(train_set, test_set, steps=steps, seed=seed, device=device)
    if cache:
        save_checkpoint(reid.model, {"kind": KIND, "dataset": spec.name, "options": options,
                                     "test_accuracy": reid.test_accuracy, "notes": reid.notes}, path)
        reid.source = str(path)
    return reid
