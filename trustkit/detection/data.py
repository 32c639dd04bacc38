"""Real vs generated images for detector training and evaluation, split and cached.

Real images come from a data set's own train and test splits (``faces``: split by file, so no file is in
both); fakes are sampled from trustkit generators trained on the real training split, quantised to 8 bits
like the photographs (otherwise the detector could learn the float precision). Every split is balanced: as
many fakes of each generator as real images. Sets are cached under ``$TRUSTKIT_HOME/detection`` by a hash of
the data set, sizes, seed and the generators' weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trustkit.data import get_spec, load_dataset
from trustkit.detection.base import FAKE, REAL
from trustkit.errors import InvalidArgumentError
from trustkit.fingerprint import cache_key, file_fingerprint
from trustkit.paths import file_label, home
from trustkit.runtime import select_device

SPLITS = ("train", "val", "test")
DEFAULT_GENERATORS = ("dcgan", "dcgan-resize", "wgan-gp", "conv-vae")


@dataclass
class FakeImageSet:
    """uint8 images N×C×H×W: ``real[split]`` and ``fake[generator][split]`` (same count as real per split)."""

    dataset: str
    generators: list[str]
    real: dict[str, torch.Tensor]
    fake: dict[str, dict[str, torch.Tensor]]
    key: str
    sources: dict[str, str] = field(default_factory=dict)  # generator -> checkpoint path

    def pair(self, split: str, generators: list[str] | str) -> tuple[torch.Tensor, torch.Tensor]:
        """Real images of ``split`` (label 0) and as many fakes (label 1), shared equally by ``generators``."""
        names = [generators] if isinstance(generators, str) else list(generators)
        real = self.real[split]
        share = len(real) // len(names)
        fakes = torch.cat([self.fake[g][split][:share] for g in names])
        x = torch.cat([real, fakes])
        y = torch.cat([torch.full((len(real),), REAL), torch.full((len(fakes),), FAKE)]).long()
        return x, y


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 0..255, rounded (the 8-bit quantisation every photograph here went through)."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def _cache_key(dataset: str, sizes: dict[str, int], seed: int, fingerprints: dict[str, str]) -> str:
    return cache_key({"dataset": dataset, "sizes": sizes, "seed": seed, "generators": fingerprints})[:32]


def check_request(dataset: str, generators: list[str] | tuple[str, ...], sizes: dict[str, int],
                  data_root: str | None = None) -> tuple[str, list[str]]:
    """``(data set name, canonical generator names)`` of a fake-set request, or a one-line error: unknown or
    conditional generators, a split under 2 images, more images than the data set has. Nothing is trained."""
    from trustkit.generative import GENERATIVE_MODELS

    spec = get_spec(dataset)
    names = [GENERATIVE_MODELS.canonical(g) for g in generators]
    if not names:
        raise InvalidArgumentError("name at least one generator, e.g. --generators dcgan,conv-vae")
    conditional = [n for n in names if GENERATIVE_MODELS.get(n).conditional]
    if conditional:
        raise InvalidArgumentError(f"use unconditional generators for fakes ({', '.join(conditional)} need class "
                                   "labels); e.g. dcgan, dcgan-resize, wgan-gp, conv-vae, vae")
    for split, size in sizes.items():
        if size < 2:
            raise InvalidArgumentError(f"--n-{split} must be at least 2, got {size}")
    train_size, test_size = (len(load_dataset(spec.name, split, data_root)) for split in ("train", "test"))
    if sizes["train"] + sizes["val"] > train_size or sizes["test"] > test_size:
        raise InvalidArgumentError(f"{spec.name} has {train_size} training and {test_size} test images; "
                                   f"ask for at most that many (--n-train + --n-val, --n-test)")
    return spec.name, names


def build_fake_set(dataset: str = "faces", generators: list[str] | tuple[str, ...] = DEFAULT_GENERATORS, *,
                   n_train: int = 2000, n_val: int = 500, n_test: int = 1000, seed: int = 0,
                   data_root: str | None = None, device: str = "auto", use_cache: bool = True) -> FakeImageSet:
    """Real and fake images of ``dataset`` for every generator (trained first if missing), cached."""
    from trustkit.generative.run import ensure_generator
    from trustkit.generative.store import resolve_generator
    from trustkit.models.store import checkpoint_exists, read_weights, save_tensors

    sizes = {"train": n_train, "val": n_val, "test": n_test}
    dataset, names = check_request(dataset, generators, sizes, data_root)
    spec = get_spec(dataset)
    torch_device = select_device(device)
    train_split, test_split = load_dataset(spec.name, "train", data_root), load_dataset(spec.name, "test", data_root)
    loaded = {}
    for name in names:
        ensure_generator(name, spec.name, data_root=data_root, device=torch_device)
        loaded[name] = resolve_generator(name, spec.name, torch_device)
    fingerprints = {name: file_fingerprint(g.source) for name, g in loaded.items()}
    key = _cache_key(spec.name, sizes, seed, fingerprints)
    cache = home() / "detection" / f"{file_label(spec.name)}-{key}.safetensors"
    sources = {name: g.source for name, g in loaded.items()}
    if use_cache and checkpoint_exists(cache):
        tensors = read_weights(cache)
        return FakeImageSet(spec.name, names, {s: tensors[f"real/{s}"] for s in SPLITS},
                            {g: {s: tensors[f"fake/{g}/{s}"] for s in SPLITS} for g in names}, key, sources)
    order = torch.randperm(len(train_split), generator=torch.Generator().manual_seed(seed))
    test_order = torch.randperm(len(test_split), generator=torch.Generator().manual_seed(seed + 1))
    real = {"train": train_split.images[order[:n_train]], "val": train_split.images[order[n_train:n_train + n_val]],
            "test": test_split.images[test_order[:n_test]]}
    real = {s: to_uint8(v) if v.dtype != torch.uint8 else v.clone() for s, v in real.items()}
    fake: dict[str, dict[str, torch.Tensor]] = {}
    for index, (name, generator) in enumerate(loaded.items()):
        noise = torch.Generator().manual_seed(seed * 1000 + index)
        images = to_uint8(generator.model.sample(n_train + n_val + n_test, generator=noise))
        fake[name] = {"train": images[:n_train], "val": images[n_train:n_train + n_val],
                      "test": images[n_train + n_val:]}
    result = FakeImageSet(spec.name, names, real, fake, key, sources)
    if use_cache:
        tensors = {f"real/{s}": real[s] for s in SPLITS}
        tensors.update({f"fake/{g}/{s}": fake[g][s] for g in names for s in SPLITS})
        save_tensors(tensors, {"kind": "fake-image-set", "dataset": spec.name, "generators": sources,
                               "sizes": sizes, "seed": seed, "key": key}, cache)
    return result


def describe(images: FakeImageSet) -> dict[str, Any]:
    return {"dataset": images.dataset, "generators": images.sources, "key": images.key,
            "sizes": {s: len(images.real[s]) for s in SPLITS}}


def cached_sets() -> list[Path]:
    from trustkit.models.store import list_checkpoints

    return list_checkpoints(folder=home() / "detection")
