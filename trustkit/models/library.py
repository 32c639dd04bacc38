"""Architectures from torchvision and timm: ``torchvision:NAME`` and ``timm:NAME`` model specs.

A spec names an architecture of an installed library (its code ships with the library, so loading one runs
no code from the user's files and needs no ``--trust-code``), built untrained — trustkit downloads nothing —
with the data set's class count, and filled with the user's weights from a ``.safetensors`` file:

    torchvision:resnet50?weights=/models/r50.safetensors
    timm:vit_tiny_patch16_224?weights=vit.safetensors&num_classes=10

The library's preprocessing goes inside the model (its mean/std as a normalisation layer), so inputs stay
[0, 1] like every trustkit model. Weights must be safetensors: trustkit never unpickles a file, and a
``.pt``/``.pth`` state dict is refused with the one-line conversion. Options: ``weights`` (a path; without it
the network keeps its random initialisation, which is only useful for timing), ``num_classes`` (default: the
data set's). The CLI's ``--weights`` and ``--num-classes`` write them.
"""
from __future__ import annotations

import os
import re
from urllib.parse import quote, unquote
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trustkit.errors import CheckpointError, InvalidArgumentError, UnknownNameError
from trustkit.models.layers import NormalizedClassifier

LIBRARY_PATTERN = re.compile(r"^(torchvision|timm):([A-Za-z0-9_.\-]+)(?:\?(.*))?$")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CONVERT_HINT = ("convert it once with: python -c \"import torch, safetensors.torch as s; "
                "s.save_file(torch.load('W.pt', weights_only=True), 'W.safetensors')\" (only for a file you trust)")


@dataclass(frozen=True)
class LibrarySpec:
    library: str
    name: str
    weights: Path | None
    num_classes: int | None


def is_library_spec(spec: object) -> bool:
    return isinstance(spec, str) and LIBRARY_PATTERN.match(spec) is not None


def library_spec(spec: str, *, weights: str | os.PathLike | None = None, num_classes: int | None = None) -> str:
    """``spec`` with ``weights`` (made absolute) and ``num_classes`` written into its options (what the CLI's
    ``--weights`` / ``--num-classes`` do)."""
    options = []
    if weights is not None:
        # quoted: a path may hold '&', '?' or '=' (unquoted again when the spec is read)
        options.append(f"weights={quote(str(Path(weights).expanduser().resolve()), safe='/:')}")
    if num_classes is not None:
        options.append(f"num_classes={int(num_classes)}")
    if not options:
        return spec
    return spec + ("&" if "?" in spec else "?") + "&".join(options)


def parse_library_spec(spec: str) -> LibrarySpec:
    match = LIBRARY_PATTERN.match(spec)
    if match is None:
        raise InvalidArgumentError(f"'{spec}' is not a library model spec; write torchvision:NAME or timm:NAME")
    library, name, query = match.groups()
    options = dict(part.partition("=")[::2] for part in (query or "").split("&") if part)
    unknown = set(options) - {"weights", "num_classes"}
    if unknown:
        raise InvalidArgumentError(f"unknown option {', '.join(sorted(unknown))} in '{spec}'; use weights=FILE or "
                                   "num_classes=K (--weights, --num-classes)")
    count = options.get("num_classes")
    if count is not None and (not count.isdigit() or int(count) < 2):
        raise InvalidArgumentError(f"--num-classes must be a whole number of at least 2, got {count}")
    weights = Path(unquote(options["weights"])) if options.get("weights") else None
    return LibrarySpec(library, name, weights, int(count) if count else None)


def _torchvision_network(name: str, num_classes: int) -> tuple[nn.Module, tuple, tuple]:
    import torchvision

    classifiers = torchvision.models.list_models(module=torchvision.models)
    if name not in classifiers:
        close = [c for c in classifiers if name.lower().replace("-", "_") in c][:5]
        hint = f"; did you mean {', '.join(close)}" if close else ""
        raise UnknownNameError(f"torchvision has no classification model '{name}'{hint}; see "
                               "torchvision.models.list_models(module=torchvision.models)")
    network = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    try:  # the published weights' transform names the preprocessing this architecture was trained with
        transform = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        mean, std = tuple(transform.mean), tuple(transform.std)
    except (AttributeError, ValueError):
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    return network, mean, std


def _timm_network(name: str, num_classes: int) -> tuple[nn.Module, tuple, tuple]:
    try:
        import timm
    except ImportError:
        raise InvalidArgumentError(f"timm:{name} needs timm, an optional extra: pip install 'trustkit[timm]'") \
            from None
    if not timm.list_models(name):
        raise UnknownNameError(f"timm has no model '{name}'; see timm.list_models('*{name[:6]}*')")
    network = timm.create_model(name, pretrained=False, num_classes=num_classes)
    config = getattr(network, "pretrained_cfg", {}) or {}
    return network, tuple(config.get("mean", IMAGENET_MEAN)), tuple(config.get("std", IMAGENET_STD))


def _has_safetensors_header(path: Path) -> bool:
    """True when ``path`` starts as a safetensors file does: a little-endian 8-byte length whose JSON header
    (``{`` first) fits in the file. Its first byte is that length's lowest byte, so it can be 0x80 or 'P'
    like a pickle's or a zip's marker; this is checked before those markers are."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    return head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= path.stat().st_size


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"no weights file {path}; give a .safetensors state dict of the architecture")
    with path.open("rb") as handle:
        head = handle.read(8)
    pickled = path.suffix.lower() in (".pt", ".pth", ".bin", ".ckpt") or head.startswith(b"PK") or head[:1] == b"\x80"
    if pickled and not _has_safetensors_header(path):
        raise CheckpointError(f"{path} is a pickled PyTorch file; trustkit never unpickles files (that runs any "
                              f"code they hold) and reads weights only as safetensors; {CONVERT_HINT}")
    from safetensors.torch import load

    try:
        return load(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"cannot read {path} as safetensors ({type(exc).__name__}: {exc}); "
                              f"{CONVERT_HINT}") from None


def load_library_model(spec: str, num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """``(eval-mode model on [0, 1] inputs, metadata)`` for a ``torchvision:`` / ``timm:`` spec; the network's
    class count is ``num_classes`` unless the spec sets one. A state dict that does not fit the architecture is
    one line."""
    parsed = parse_library_spec(spec)
    classes = parsed.num_classes or num_classes
    build = _torchvision_network if parsed.library == "torchvision" else _timm_network
    network, mean, std = build(parsed.name, classes)
    if parsed.weights is not None:
        state = _read_weights(parsed.weights)
        state = {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel checkpoints
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = " ".join(str(exc).split())[:300]
            raise CheckpointError(f"{parsed.weights} does not fit {parsed.library}:{parsed.name} with {classes} "
                                  f"classes ({first}); check the architecture name and --num-classes") from None
    model = NormalizedClassifier(network, mean, std).eval()
    metadata = {"format": "library", "library": parsed.library, "arch": parsed.name, "num_classes": classes,
                "weights": str(parsed.weights) if parsed.weights else None, "mean": list(mean), "std": list(std)}
    return model, metadata
