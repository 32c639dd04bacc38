"""Naming a model's layers and capturing their outputs with forward hooks (feature inversion, attributions,
feature visualisation and style transfer all pick layers this way).

Layers are named by the model's own module names (``net.1`` for the zoo cnn's first ReLU) or by friendly
aliases made from the module type and its order of execution: ``conv1``, ``relu1``, ``pool1``, ``conv2`` …
``fc1``, ``relu3``, ``fc2``. The default audit covers every ReLU-like and pooling output (the intermediate
representations a split-inference deployment would send), see :func:`default_layers`.

:class:`FeatureExtractor` returns Φ(x), the output of one module, and stops the forward pass there (the rest of
the network is skipped by raising from the hook), so Φ is differentiable in x and as cheap as the layer is deep.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from trustkit.models.inference import input_gradients_only
from trustkit.errors import InvalidArgumentError, UnknownNameError

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus)
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_KINDS: tuple[tuple[tuple[type, ...], str], ...] = (
    ((nn.Conv2d, nn.Conv1d), "conv"), ((nn.ConvTranspose2d,), "deconv"), ((nn.Linear,), "fc"),
    (ACTIVATIONS, "relu"), (POOLS, "pool"), ((nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm), "bn"),
    ((nn.Flatten,), "flatten"), ((nn.Dropout, nn.Dropout2d), "dropout"),
)


@dataclass(frozen=True)
class LayerInfo:
    """A module whose output can be audited: its module name, friendly alias, kind and per-image output shape."""

    name: str
    alias: str
    kind: str
    shape: tuple[int, ...]
    order: int

    @property
    def size(self) -> int:
        """Number of feature values per image."""
        return math.prod(self.shape)

    @property
    def label(self) -> str:
        """``relu1 (net.1)``: alias first, module name in brackets."""
        return self.alias if self.alias == self.name else f"{self.alias} ({self.name})"

    @property
    def shape_text(self) -> str:
        return "×".join(map(str, self.shape))


def _kind(module: nn.Module) -> str:
    for types, kind in _KINDS:
        if isinstance(module, types):
            return kind
    return type(module).__name__.lower()


def describe_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerInfo]:
    """Every leaf module that runs in ``model``'s forward pass, in execution order, with aliases and shapes.

    The input normalisation layer of trustkit models (``normalize``) is left out: its output is the image.
    """
    modules = dict(model.named_modules())
    order: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []

    def recorder(name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if name not in shapes and isinstance(output, torch.Tensor):
                order.append(name)
                shapes[name] = tuple(output.shape[1:])
        return hook

    try:
        for name, module in modules.items():
            if name and not list(module.children()) and not name.split(".")[-1] == "normalize":
                handles.append(module.register_forward_hook(recorder(name)))
    except RuntimeError as exc:  # TorchScript modules refuse Python hooks
        raise InvalidArgumentError(f"cannot attach feature hooks to this model ({str(exc).splitlines()[0]}); audit a "
                                   "trustkit checkpoint or a package.module:factory model instead of TorchScript") from None
    device = next(iter(model.parameters()), torch.empty(0)).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.rand(1, *input_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    counters: dict[str, int] = {}
    layers = []
    for index, name in enumerate(order):
        kind = _kind(modules[name])
        counters[kind] = counters.get(kind, 0) + 1
        layers.append(LayerInfo(name, f"{kind}{counters[kind]}", kind, shapes[name], index))
    return layers


def default_layers(layers: list[LayerInfo]) -> list[LayerInfo]:
    """The audit's default: every ReLU-like and pooling output except the network's last module (the logits);
    when a model has none, every layer but the last."""
    chosen = [layer for layer in layers[:-1] if layer.kind in ("relu", "pool")]
    return chosen or layers[:-1] or layers


def resolve_layers(layers: list[LayerInfo], names: list[str] | None) -> list[LayerInfo]:
    """The layers named in ``names`` (module names or aliases, case-insensitive), in execution order;
    :func:`default_layers` when ``names`` is empty. Unknown names raise one line listing the available ones."""
    if not names:
        return default_layers(layers)
    lookup: dict[str, LayerInfo] = {}
    for layer in layers:
        lookup[layer.name.lower()] = layer
        lookup[layer.alias.lower()] = layer
    chosen: dict[str, LayerInfo] = {}
    for name in names:
        layer = lookup.get(name.strip().lower())
        if layer is None:
            import difflib

            close = difflib.get_close_matches(name.strip().lower(), list(lookup), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            available = ", ".join(layer.label for layer in layers)
            raise UnknownNameError(f"unknown layer '{name}'{hint}; this model has: {available}")
        chosen[layer.name] = layer
    return sorted(chosen.values(), key=lambda layer: layer.order)


class _Captured(Exception):
    """Raised by the capture hook to end the forward pass once the wanted layer has run."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output


class FeatureExtractor(nn.Module):
    """Φ(x): the output of module ``layer`` of ``model`` for images ``x`` in [0, 1], differentiable in ``x``.

    The forward pass stops at the layer. ``transform`` (e.g. a split-layer mitigation) is applied to the
    captured features. The model is put in eval mode and its parameters need no gradients here.
    """

    def __init__(self, model: nn.Module, layer: LayerInfo | str,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.model = model.eval()
        self.layer_name = layer.name if isinstance(layer, LayerInfo) else layer
        modules = dict(model.named_modules())
        if self.layer_name not in modules:
            raise UnknownNameError(f"model has no module '{self.layer_name}'")
        self._module = modules[self.layer_name]
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            raise _Captured(output)

        handle = self._module.register_forward_hook(hook)
        try:
            self.model(x)
        except _Captured as captured:
            features = captured.output
        else:
            raise RuntimeError(f"layer {self.layer_name} did not run in the model's forward pass")
        finally:
            handle.remove()
        return self.transform(features) if self.transform is not None else features


@contextlib.contextmanager
def transformed_layer(model: nn.Module, layer: LayerInfo | str,
                      transform: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[nn.Module]:
    """Within the block, ``model``'s forward pass replaces ``layer``'s output by ``transform(output)`` (what a
    split-inference mitigation does to the rest of the network)."""
    name = layer.name if isinstance(layer, LayerInfo) else layer
    module = dict(model.named_modules())[name]
    handle = module.register_forward_hook(lambda _m, _i, output: transform(output))
    try:
        yield model
    finally:
        handle.remove()


# Eval mode and no parameter gradients for the block: inversion attacks differentiate w.r.t. inputs only,
# exactly what the attacks' context manager does.
frozen = input_gradients_only
