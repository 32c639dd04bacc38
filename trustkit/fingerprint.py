"""What identifies a computation for caching: trustkit's own code, library versions, tensors, model bytes.

Every cache (bench cells, probes, fake-image sets, inverse networks) keys its entries with :func:`cache_key`,
which always folds in :func:`code_fingerprint` (a hash of trustkit's source files, so any change to the code
invalidates what it computed — a version number stays the same across many behaviour-changing commits) and
:func:`library_versions` (torch, torchvision, ART, numpy). Callers add what else decides the number: the model's
bytes (:func:`file_fingerprint`, :func:`state_dict_fingerprint`), the exact input tensors
(:func:`tensor_fingerprint`) and every resolved parameter.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

PACKAGE_ROOT = Path(__file__).resolve().parent
SOURCE_SUFFIXES = (".py", ".j2", ".yaml")
LIBRARIES = ("torch", "torchvision", "adversarial-robustness-toolbox", "numpy")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over trustkit's source files (path and bytes of every .py, template and suite, sorted)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PACKAGE_ROOT.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file()):
        digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Installed versions of the libraries whose kernels and defaults decide trustkit's numbers."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def cache_key(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``payload`` plus trustkit's code fingerprint and library versions."""
    text = json.dumps({**payload, "code": code_fingerprint(), "libraries": library_versions()}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_FILE_MEMO: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (memoised by path, size and modification time)."""
    stat = os.stat(path)
    memo = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _FILE_MEMO:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _FILE_MEMO[memo] = digest.hexdigest()
    return _FILE_MEMO[memo]


def tensor_fingerprint(*tensors: torch.Tensor) -> str:
    """sha256 of tensors' dtypes, shapes and bytes (the exact images and labels a computation saw)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{data.dtype}{tuple(data.shape)}".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def state_dict_fingerprint(model: nn.Module) -> str:
    """sha256 of a module's class, parameter and buffer names, shapes and bytes (what it computes with)."""
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor_fingerprint(tensor).encode())
    return digest.hexdigest()
