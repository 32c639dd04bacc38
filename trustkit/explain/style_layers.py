"""Choosing and reading the layers of neural style transfer (:mod:`trustkit.explain.style`).

**Layers** are named as everywhere in trustkit (:mod:`trustkit.models.features`: module names such as
``net.features.20``, or aliases ``relu3``), plus *block names* ``reluB_K`` / ``convB_K``: the K-th activation
(convolution) of the B-th block of equal spatial size, Gatys' VGG naming, which works for any convnet.
``convB_K`` is read after its activation when one follows before the next convolution, as in Gatys et al.
(Caffe's ReLUs are in place): on torchvision's VGG-19 ``conv4_2`` is the module ``net.features.22``. Defaults
(:func:`default_layers`): style = the first activation of each of the first five blocks (VGG: conv1_1 ...
conv5_1), content = the second activation of the next-to-last block when there are four or more blocks (VGG:
conv4_2), else of the last. Blocks smaller than 2×2 at the model's own input size are left out.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from trustkit.errors import InvalidArgumentError, ShapeMismatchError, UnknownNameError
from trustkit.models.features import LayerInfo, describe_layers

MAX_STYLE_LAYERS = 5  # Gatys et al.: conv1_1 ... conv5_1
MIN_MAP_PIXELS = 4  # blocks below 2×2 (at the model's own input size) carry no texture statistics


# --- several layers in one forward pass ----------------------------------------------------------------

class _Done(Exception):
    """Raised by the last capture hook: the rest of the network is not needed."""


class LayerFeatures(nn.Module):
    """``{module name: output}`` of several modules of ``model`` for images in [0, 1], in one forward pass that
    stops once the last of them has run (the head — and a fully connected layer that would refuse another
    image size — never runs). Differentiable in the input. A module that runs twice (a ResNet block's shared
    ReLU) gives its first output, the one :func:`~trustkit.models.features.describe_layers` measured."""

    def __init__(self, model: nn.Module, layers: Sequence[LayerInfo | str]) -> None:
        super().__init__()
        self.model = model
        self.names = list(dict.fromkeys(layer.name if isinstance(layer, LayerInfo) else layer for layer in layers))
        if not self.names:
            raise InvalidArgumentError("no layer to extract; name at least one")
        modules = dict(model.named_modules())
        unknown = [name for name in self.names if name not in modules]
        if unknown:
            raise UnknownNameError(f"model has no module {', '.join(unknown)}; name layers as describe_layers does")
        self._modules_by_name = {name: modules[name] for name in self.names}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        captured: dict[str, torch.Tensor] = {}

        def hook_for(name: str):  # noqa: ANN202 - a forward hook
            def hook(module: nn.Module, inputs: tuple, output: object) -> None:
                if name in captured or not isinstance(output, torch.Tensor):
                    return
                # a copy: a later in-place op (ReLU(inplace=True), a ResNet's out += identity) would rewrite it
                captured[name] = output.clone()
                if len(captured) == len(self.names):
                    raise _Done
            return hook

        handles = [module.register_forward_hook(hook_for(name)) for name, module in self._modules_by_name.items()]
        try:
            self.model(x)
        except _Done:
            pass
        except (RuntimeError, ValueError) as exc:  # e.g. a layer that cannot take this image size
            first = " ".join(str(exc).split())[:200]
            raise ShapeMismatchError(f"the model rejects {'×'.join(map(str, x.shape[1:]))} images before reaching "
                                     f"{', '.join(n for n in self.names if n not in captured)} ({first}); use "
                                     "another image size or earlier layers") from None
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for name in self.names if name not in captured]
        if missing:
            raise InvalidArgumentError(f"layer(s) {', '.join(missing)} did not run in the model's forward pass; "
                                       "pick layers that describe_layers lists")
        return captured


# --- choosing layers ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StyleLayer:
    """A layer used for style or content: its :class:`LayerInfo` (shape at the model's own input size) and its
    block name (``relu4_2``; empty when it is in no block)."""

    info: LayerInfo
    block: str

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def label(self) -> str:
        """``relu4_2 = relu10 (net.features.22)``."""
        return f"{self.block} = {self.info.label}" if self.block else self.info.label


@dataclass(frozen=True)
class LayerChoice:
    """The content and style layers of a transfer (execution order)."""

    content: tuple[StyleLayer, ...]
    style: tuple[StyleLayer, ...]

    @property
    def names(self) -> list[str]:
        """Every module name involved, in execution order."""
        chosen = {layer.name: layer for layer in self.content + self.style}
        return [layer.name for layer in sorted(chosen.values(), key=lambda layer: layer.info.order)]


def block_names(layers: Sequence[LayerInfo]) -> dict[str, LayerInfo]:
    """``{"relu1_1": layer, "conv1_1": layer, ...}``: blocks are runs of layers with feature maps of the same
    spatial size; ``reluB_K`` is the K-th activation of block B, ``convB_K`` its K-th convolution read after
    the activation that follows it (before the next convolution), else its own output."""
    names: dict[str, LayerInfo] = {}
    block, size, counts = 0, None, {"conv": 0, "relu": 0}
    spatial = [layer for layer in layers if len(layer.shape) == 3]
    for index, layer in enumerate(spatial):
        if layer.shape[1:] != size:
            block, size, counts = block + 1, layer.shape[1:], {"conv": 0, "relu": 0}
        if layer.kind == "relu":
            counts["relu"] += 1
            names[f"relu{block}_{counts['relu']}"] = layer
        elif layer.kind == "conv":
            counts["conv"] += 1
            shown = layer
            for later in spatial[index + 1:]:
                if later.kind == "conv" or later.shape[1:] != size:
                    break
                if later.kind == "relu":  # describe_layers calls every activation type "relu"
                    shown = later
                    break
            names[f"conv{block}_{counts['conv']}"] = shown
    return names


def _blocks(layers: Sequence[LayerInfo]) -> list[list[LayerInfo]]:
    """Candidate layers per block: the activations (a block without any offers its convolutions)."""
    blocks: list[list[LayerInfo]] = []
    size = None
    for layer in layers:
        if len(layer.shape) != 3:
            continue
        if layer.shape[1:] != size:
            blocks.append([])
            size = layer.shape[1:]
        blocks[-1].append(layer)
    chosen = []
    for members in blocks:
        if members[0].shape[1] * members[0].shape[2] < MIN_MAP_PIXELS:
            continue
        activations = [m for m in members if m.kind == "relu"]
        candidates = activations or [m for m in members if m.kind == "conv"]
        if candidates:
            chosen.append(candidates)
    return chosen


def default_layers(layers: Sequence[LayerInfo]) -> tuple[list[LayerInfo], list[LayerInfo]]:
    """``(content layers, style layers)`` by Gatys et al.'s recipe, for any convnet (see the module doc)."""
    blocks = _blocks(layers)
    if not blocks:
        raise ShapeMismatchError("this model has no convolutional feature maps of at least 2×2 for style transfer; "
                                 "use a convnet (a zoo cnn or resnet, torchvision:vgg19)")
    style = [block[0] for block in blocks[:MAX_STYLE_LAYERS]]
    content_block = blocks[-2] if len(blocks) >= 4 else blocks[-1]
    content = [content_block[1] if len(content_block) > 1 else content_block[0]]
    return content, style


def _lookup(layers: Sequence[LayerInfo], blocks: dict[str, LayerInfo]) -> dict[str, LayerInfo]:
    table = {}
    for layer in layers:
        table[layer.name.lower()] = layer
        table[layer.alias.lower()] = layer
    table.update({name.lower(): layer for name, layer in blocks.items()})
    return table


def choose_layers(layers: Sequence[LayerInfo], content: Sequence[str] | None = None,
                  style: Sequence[str] | None = None) -> LayerChoice:
    """The content and style layers named by ``content`` / ``style`` (module names, aliases or block names,
    case-insensitive; empty: :func:`default_layers`). An unknown name, or a layer without a spatial feature map,
    is one line listing what there is."""
    blocks = block_names(layers)
    table = _lookup(layers, blocks)
    block_of: dict[str, str] = {}  # module name -> "conv4_2/relu4_2" (every block name that reads it)
    for name, layer in sorted(blocks.items(), key=lambda item: not item[0].startswith("conv")):
        block_of[layer.name] = f"{block_of[layer.name]}/{name}" if layer.name in block_of else name
    defaults = default_layers(layers) if not content or not style else None

    def pick(names: Sequence[str] | None, fallback: list[LayerInfo], role: str) -> tuple[StyleLayer, ...]:
        if not names:
            chosen = fallback
        else:
            chosen = []
            for raw in names:
                key = raw.strip().lower()
                layer = table.get(key)
                if layer is None:
                    close = difflib.get_close_matches(key, list(table), n=1, cutoff=0.6)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    spatial = ", ".join(StyleLayer(x, block_of.get(x.name, "")).label for x in layers
                                        if len(x.shape) == 3)
                    raise UnknownNameError(f"unknown {role} layer '{raw}'{hint}; this model's feature maps: {spatial}")
                if len(layer.shape) != 3:
                    raise InvalidArgumentError(f"{role} layer '{raw}' ({layer.label}) has no spatial feature map (its "
                                               f"output is {layer.shape_text}); pick a convolutional layer")
                chosen.append(layer)
        unique = {layer.name: layer for layer in chosen}
        ordered = sorted(unique.values(), key=lambda layer: layer.order)
        return tuple(StyleLayer(layer, block_of.get(layer.name, "")) for layer in ordered)

    return LayerChoice(pick(content, defaults[0] if defaults else [], "content"),
                       pick(style, defaults[1] if defaults else [], "style"))


def model_layers(model: nn.Module, input_shape: Sequence[int]) -> list[LayerInfo]:
    """:func:`~trustkit.models.features.describe_layers` of ``model`` at its own input size ``input_shape``
    (C×H×W); a model that cannot take it is one line."""
    try:
        return describe_layers(model, tuple(int(s) for s in input_shape))
    except (RuntimeError, ValueError) as exc:
        first = " ".join(str(exc).split())[:200]
        raise ShapeMismatchError(f"the model rejects images of shape {'×'.join(map(str, input_shape))} ({first}); "
                                 "pass the input shape it was built for") from None


__all__ = ["LayerChoice", "LayerFeatures", "MAX_STYLE_LAYERS", "MIN_MAP_PIXELS", "StyleLayer", "block_names",
           "choose_layers", "default_layers", "model_layers"]
