"""MNIST, 60,000 train + 10,000 test 28×28 grey digits, in torchvision's raw layout."""
from __future__ import annotations

from pathlib import Path

from trustkit.data.base import DatasetSpec, ImageDataset, fetch
from trustkit.errors import DataNotFoundError

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _torchvision_root(root: Path) -> Path | None:
    """The folder to hand torchvision (it reads ``<root>/MNIST/raw``), accepting the MNIST folder itself."""
    for candidate, raw in ((root, root / "MNIST" / "raw"), (root.parent, root / "raw")):
        if all((raw / f).is_file() for f in RAW_FILES):
            return candidate
    return None


def load(split: str, roots: list[Path], download: bool) -> ImageDataset:
    from torchvision.datasets import MNIST

    found = next((r for r in map(_torchvision_root, roots) if r is not None), None)
    if found is None and download:
        found = roots[0]
        fetch("MNIST", lambda: (MNIST(str(found), train=True, download=True),
                                MNIST(str(found), train=False, download=True)), found)
    if found is None:
        searched = ", ".join(str(r / "MNIST" / "raw") for r in roots)
        raise DataNotFoundError(
            f"MNIST not found (searched {searched}); pass --data-root DIR (or set TRUSTKIT_DATA) to a folder "
            "holding MNIST/raw/*-ubyte, or add --download when online")
    data = MNIST(str(found), train=(split == "train"), download=False)
    images = data.data.unsqueeze(1).contiguous()  # uint8 N×1×28×28
    return ImageDataset(images, data.targets, name="mnist", split=split, class_names=SPEC.class_names)


SPEC = DatasetSpec(
    name="mnist",
    summary="MNIST 28×28 handwritten digits, 60,000 train / 10,000 test",
    shape=(1, 28, 28),
    class_names=tuple(str(d) for d in range(10)),
    mean=(0.1307,),
    std=(0.3081,),
    eps_linf=(0.05, 0.1, 0.2, 0.3),
    eps_l2=(0.5, 1.0, 1.5, 2.0),
    loader=load,
    default_n=1000,
)
