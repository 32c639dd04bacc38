"""Neural style transfer (Gatys, Ecker & Bethge, CVPR 2016): an image with the content of one picture and the
style of another, found by optimising its pixels through a classifier's feature maps.

**Losses.** For the feature maps ``F_l`` (C×H×W) of layer ``l`` of the optimised image, ``P_l`` of the content
image and the Gram matrices ``G(F) = F Fᵀ / (C·H·W)`` (``F`` reshaped to C × H·W; :func:`gram_matrix`):

* content loss ``L_c = Σ_l w_l · mean((F_l − P_l)²)`` over the content layers (:func:`content_loss`);
* style loss ``L_s = Σ_l w_l · ‖G(F_l) − G(S_l)‖²_F`` over the style layers, ``S_l`` the style image's maps
  (:func:`style_loss`). With this normalisation ``Σ(G − A)²`` equals Gatys et al.'s
  ``Σ(G' − A')² / (N_l² M_l²)`` of unnormalised Gram matrices up to their constant 1/4;
* total ``α·L_c + β·L_s + γ·TV(x)``, TV the squared total variation per pixel (the seed deck's TV_β prior with
  β = 2, pixel² units) that damps the high-frequency noise the style gradient adds.

**Unitless weights.** The sizes of feature values differ by orders of magnitude between models (8×8 digits CNN,
ImageNet VGG) and layers, so a β that works for one is useless for another. With ``normalize=True`` (the
default) each layer's weight is divided by the size of its target: ``w_l = 1 / (L · mean(P_l²))`` for content
and ``w_l = 1 / (L · ‖G(S_l)‖²_F)`` for style (``L`` layers). Both losses are then relative errors: 0 is a
perfect match and 1 is as far as a blank (all-zero) feature map, on every model, and the same ``style_weight``
means the same trade-off everywhere. ``normalize=False`` keeps Gatys' raw sums with ``w_l = 1/L``.

**Optimiser.** L-BFGS, as Gatys et al. (``optimizer="lbfgs"``, the default): the objective is smooth,
deterministic and full-batch — what quasi-Newton methods are for — and the strong-Wolfe line search picks the
step size, so there is no learning rate to tune per model (``lr`` only scales the first trial step). Measured on
a random 8-layer convnet at 96×96: after 100 steps L-BFGS reached a lower total loss than Adam (0.054 against
0.061, from 1.48), at about 3.4 loss evaluations per step. Each of ``steps`` is one L-BFGS iteration (the curvature history carries over), followed by clamping the
pixels to [0, 1] — the images stay valid model inputs at every step; clamping is a projection the quasi-Newton
model does not see, which costs a little progress at saturated pixels and never validity. ``optimizer="adam"``
(``lr`` in pixel units per step, default 0.02) is the memory-light alternative for large images on small GPUs.

**Layers** (content and style; Gatys' block names ``reluB_K`` / ``convB_K`` for any convnet) are chosen by
:mod:`trustkit.explain.style_layers`; a user's image files are decoded by :mod:`trustkit.explain.image_files`.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple, Sequence

import torch
from torch import nn

from trustkit.errors import InvalidArgumentError, ShapeMismatchError
from trustkit.explain.style_layers import LayerFeatures, StyleLayer, choose_layers, model_layers
from trustkit.images import total_variation
from trustkit.models.features import LayerInfo
from trustkit.models.inference import input_gradients_only

STEPS = 200
LBFGS_LR = 1.0  # L-BFGS: scale of the first trial step; the line search sets the rest
ADAM_LR = 0.02  # Adam: pixel units ([0, 1]) per step
CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 10.0  # with normalize=True: clearly stylised, content legible (digits cnn, random convnets)
TV_WEIGHT = 1.0  # × per-pixel squared TV (pixel²): of the order of the style term at the end, damps speckle
SIZE = 128  # default long side of the working image, pixels (CPU-friendly; 256–512 on a GPU)
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
_TINY = 1e-12


# --- Gram matrices and the two losses ------------------------------------------------------------------

def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """``G = F Fᵀ / (C·H·W)`` of feature maps N×C×H×W (N×C×L for 1-D maps): N×C×C, entry (i, j) the mean over
    positions of channel i times channel j, divided by C (units: feature value²)."""
    if features.dim() == 3:
        features = features.unsqueeze(-1)
    if features.dim() != 4:
        raise ShapeMismatchError(f"a Gram matrix needs feature maps N×C×H×W, got shape {tuple(features.shape)}; "
                                 "pick a convolutional layer, not a fully connected one")
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def _as_layers(value: Mapping[str, torch.Tensor] | torch.Tensor) -> dict[str, torch.Tensor]:
    return {"": value} if isinstance(value, torch.Tensor) else dict(value)


def _weights(names: Sequence[str], weights: Mapping[str, float] | None) -> dict[str, float]:
    if weights is None:
        return {name: 1.0 / len(names) for name in names}
    missing = [name for name in names if name not in weights]
    if missing:
        raise InvalidArgumentError(f"no weight for layer(s) {', '.join(missing)}; give one weight per layer")
    return {name: float(weights[name]) for name in names}


def _targets_for(features: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> list[str]:
    missing = [name for name in targets if name not in features]
    if missing:
        raise InvalidArgumentError(f"no features of layer(s) {', '.join(missing)}; extract every layer that has a "
                                   "target")
    return list(targets)


def content_loss(features: Mapping[str, torch.Tensor] | torch.Tensor,
                 targets: Mapping[str, torch.Tensor] | torch.Tensor,
                 weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """``Σ_l w_l · mean((F_l − P_l)²)`` (a scalar, units of feature value² times the weights): features and
    targets by layer name (or one tensor each); ``weights`` by layer, default 1/L each."""
    features, targets = _as_layers(features), _as_layers(targets)
    names = _targets_for(features, targets)
    if not names:
        raise InvalidArgumentError("no content layer given; name at least one")
    w = _weights(names, weights)
    total = sum(w[n] * (features[n] - targets[n].to(features[n])).pow(2).mean() for n in names)
    return total  # type: ignore[return-value]


def style_loss(features: Mapping[str, torch.Tensor] | torch.Tensor,
               targets: Mapping[str, torch.Tensor] | torch.Tensor,
               weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """``Σ_l w_l · ‖G(F_l) − A_l‖²_F`` averaged over the batch (a scalar, units of Gram entry² times the
    weights): ``features`` N×C×H×W by layer name, ``targets`` the style's Gram matrices (1×C×C or N×C×C, see
    :func:`gram_matrix`) by layer; ``weights`` by layer, default 1/L each (Gatys et al.'s w_l)."""
    features, targets = _as_layers(features), _as_layers(targets)
    names = _targets_for(features, targets)
    if not names:
        raise InvalidArgumentError("no style layer given; name at least one")
    w = _weights(names, weights)
    total = 0.0
    for name in names:
        gram = gram_matrix(features[name])
        target = targets[name].to(gram)
        if target.shape[-2:] != gram.shape[-2:]:
            raise ShapeMismatchError(f"layer {name or 'given'} has {gram.shape[-1]} channels but its style target "
                                     f"{target.shape[-1]}; compute the target on the same layer")
        total = total + w[name] * (gram - target).pow(2).sum((-2, -1)).mean()
    return total  # type: ignore[return-value]


# --- the optimisation ------------------------------------------------------------------------------------

class StyleResult(NamedTuple):
    """The stylised ``image`` (1×C×H×W in [0, 1], CPU float32) and its loss ``trace``: ``total``, ``content``,
    ``style`` and ``tv`` (each ``steps + 1`` floats: at the start image and after each step). Content and style
    are the weighted sums of :func:`content_loss` / :func:`style_loss` (unitless relative errors with
    ``normalize``), tv the per-pixel squared total variation (pixel²), total ``α·content + β·style + γ·tv``."""

    image: torch.Tensor
    trace: dict[str, list[float]]


def _number(name: str, value: float, *, positive: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a number, got {value!r}; pass e.g. {name}=1") from None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        bound = "> 0" if positive else ">= 0"
        raise InvalidArgumentError(f"{name} must be a finite number {bound}, got {value}; pass e.g. {name}=1")
    return number


def check_settings(*, steps: int, content_weight: float, style_weight: float, tv_weight: float,
                   optimizer: str, init: str, lr: float | None) -> None:
    """Refuse impossible transfer settings in one line each (InvalidArgumentError), before any work."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidArgumentError(f"steps must be a whole number of at least 1, got {steps!r}; pass e.g. steps=200")
    _number("content_weight", content_weight)
    _number("style_weight", style_weight)
    _number("tv_weight", tv_weight)
    if float(content_weight) == 0 and float(style_weight) == 0:
        raise InvalidArgumentError("content_weight and style_weight are both 0, so there is nothing to optimise; "
                                   "give one of them a positive weight")
    if optimizer not in OPTIMIZERS:
        raise InvalidArgumentError(f"unknown optimizer '{optimizer}'; use {' or '.join(OPTIMIZERS)}")
    if init not in INITS:
        raise InvalidArgumentError(f"unknown init '{init}'; use {' or '.join(INITS)}")
    if lr is not None:
        _number("lr", lr, positive=True)


def _image(name: str, image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise InvalidArgumentError(f"{name} must be an image tensor, got {type(image).__name__}")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[0] != 1 or min(image.shape[-2:]) < 1:
        raise ShapeMismatchError(f"{name} must be one image C×H×W (or 1×C×H×W), got shape {tuple(image.shape)}")
    image = image.detach().float()
    if not bool(torch.isfinite(image).all()):
        raise InvalidArgumentError(f"{name} holds NaN or infinite pixels; give an image in [0, 1]")
    if float(image.min()) < -1e-6 or float(image.max()) > 1 + 1e-6:
        raise InvalidArgumentError(f"{name} has pixels outside [0, 1] (min {float(image.min()):.3g}, max "
                                   f"{float(image.max()):.3g}); trustkit models take [0, 1] images and normalise inside")
    return image.clamp(0, 1).contiguous()  # L-BFGS flattens the gradient with view(), which needs contiguity


def _names(layers: Sequence[StyleLayer | LayerInfo | str]) -> list[str]:
    return [layer.name if isinstance(layer, (StyleLayer, LayerInfo)) else str(layer) for layer in layers]


def transfer_style(model: nn.Module, content: torch.Tensor, style: torch.Tensor, *,
                   content_layers: Sequence[StyleLayer | LayerInfo | str] | None = None,
                   style_layers: Sequence[StyleLayer | LayerInfo | str] | None = None,
                   content_weight: float = CONTENT_WEIGHT, style_weight: float = STYLE_WEIGHT,
                   tv_weight: float = TV_WEIGHT, steps: int = STEPS, optimizer: str = "lbfgs",
                   lr: float | None = None, init: str = "content", normalize: bool = True, seed: int = 0,
                   device: str | torch.device | None = None, input_shape: Sequence[int] | None = None,
                   on_step: Callable[[int], None] | None = None) -> StyleResult:
    """Gatys et al.'s style transfer: the image minimising ``α·L_c + β·L_s + γ·TV`` (see the module doc).

    ``content`` and ``style`` are images C×H×W in [0, 1] with the model's channel count; the style image may
    have another size (Gram matrices average over positions; textures keep the scale they have in it).
    Layers: module names, aliases or block names, or chosen layers
    (:func:`~trustkit.explain.style_layers.choose_layers`); empty: the defaults of
    :func:`~trustkit.explain.style_layers.default_layers`, found at ``input_shape`` (the C×H×W the model was built
    for; default the content's shape). ``content_weight`` α, ``style_weight`` β and ``tv_weight`` γ are ≥ 0 (unitless with
    ``normalize``); ``steps`` iterations of ``optimizer`` (``lbfgs``: ``lr`` scales its first trial step,
    default 1; ``adam``: pixel units per step, default 0.02); ``init`` ``content`` (start from the content image: the
    result keeps its layout; Gatys et al. 2016, fig. 6, show that a start biases the result towards itself) or
    ``noise`` (seeded uniform noise, their white-noise start). ``device``: where to compute (default: the model's); the model is moved
    there. ``on_step(step)`` is called after each step (progress). Deterministic for a fixed ``seed`` on a given
    device.
    """
    check_settings(steps=steps, content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
                   optimizer=optimizer, init=init, lr=lr)
    content, style = _image("content", content), _image("style", style)
    if content.shape[1] != style.shape[1]:
        raise ShapeMismatchError(f"content has {content.shape[1]} channels but style {style.shape[1]}; give both in "
                                 "the model's colour mode (read_image converts)")
    if device is not None:
        from trustkit.runtime import select_device

        torch_device = select_device(device)
        model = model.to(torch_device)
    else:
        torch_device = next(iter(model.parameters()), torch.empty(0)).device
    if input_shape is not None and int(input_shape[0]) != content.shape[1]:
        raise ShapeMismatchError(f"the model takes {input_shape[0]}-channel images but content has {content.shape[1]}"
                                 "; read the images with read_image(channels=...) to convert them")
    resolved = all(isinstance(layer, (StyleLayer, LayerInfo)) for layer in [*(content_layers or []),
                                                                               *(style_layers or [])])
    if not (content_layers and style_layers and resolved):  # names to look up, or defaults to find
        chosen = choose_layers(model_layers(model, input_shape or tuple(content.shape[1:])),
                               _names(content_layers or []), _names(style_layers or []))
        content_layers, style_layers = chosen.content, chosen.style
    content_names, style_names = _names(content_layers), _names(style_layers)
    extractor = LayerFeatures(model, list(dict.fromkeys(content_names + style_names)))
    generator = torch.Generator().manual_seed(int(seed))
    with input_gradients_only(model):
        content, style = content.to(torch_device), style.to(torch_device)
        with torch.no_grad():
            targets = extractor(content)
            content_targets = {n: targets[n] for n in content_names}
            style_features = extractor(style) if style_names else {}
            style_targets = {n: gram_matrix(style_features[n]) for n in style_names}
        content_w = {n: 1.0 / len(content_names) for n in content_names}
        style_w = {n: 1.0 / len(style_names) for n in style_names}
        if normalize:  # every layer's error relative to its target's size: unitless, model-independent weights
            for n in content_names:
                content_w[n] /= max(float(content_targets[n].pow(2).mean()), _TINY)
            for n in style_names:
                style_w[n] /= max(float(style_targets[n].pow(2).sum()), _TINY)
        alpha, beta, gamma = float(content_weight), float(style_weight), float(tv_weight)

        def losses(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            features = extractor(x)
            c = content_loss({n: features[n] for n in content_names}, content_targets, content_w)
            s = style_loss({n: features[n] for n in style_names}, style_targets, style_w)
            t = total_variation(x, 2.0).mean()
            total = alpha * c + beta * s + gamma * t
            return total, {"total": float(total.detach()), "content": float(c.detach()), "style": float(s.detach()),
                           "tv": float(t.detach())}

        if init == "content":
            start = content.clone()
        else:
            start = torch.rand(content.shape, generator=generator).to(torch_device)
        x = start.requires_grad_(True)
        trace: dict[str, list[float]] = {"total": [], "content": [], "style": [], "tv": []}

        def record(parts: dict[str, float], step: int) -> None:
            if not math.isfinite(parts["total"]):
                raise InvalidArgumentError(f"the loss became {parts['total']} at step {step}; lower lr or the "
                                           "weights, or use optimizer='lbfgs'")
            for key, value in parts.items():
                trace[key].append(value)

        if optimizer == "lbfgs":
            # one iteration per step (history kept across calls) so pixels are clamped between iterations
            opt = torch.optim.LBFGS([x], lr=lr or LBFGS_LR, max_iter=1, max_eval=25, history_size=50,
                                    tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
        else:
            opt = torch.optim.Adam([x], lr=lr or ADAM_LR)
        for step in range(steps):
            first: dict[str, float] = {}

            def closure() -> torch.Tensor:
                opt.zero_grad(set_to_none=True)
                total, parts = losses(x)
                total.backward()
                if not first:  # the loss at the step's start point; line-search trials are not the trace
                    first.update(parts)
                return total

            opt.step(closure)
            record(first, step)
            with torch.no_grad():
                x.clamp_(0, 1)
            if on_step is not None:
                on_step(step + 1)
        with torch.no_grad():
            record(losses(x)[1], steps)
    return StyleResult(x.detach().cpu().float(), trace)


def style_distance(model: nn.Module, image: torch.Tensor, style: torch.Tensor,
                   layers: Sequence[StyleLayer | LayerInfo | str]) -> float:
    """Mean over ``layers`` of ``‖G(image) − G(style)‖²_F / ‖G(style)‖²_F``: how far an image's textures are from
    the style's (0: the same Gram matrices; unitless), the normalised style loss without the optimisation."""
    names = _names(layers)
    extractor = LayerFeatures(model, names)
    device = next(iter(model.parameters()), torch.empty(0)).device
    with input_gradients_only(model), torch.no_grad():
        mine = extractor(_image("image", image).to(device))
        theirs = extractor(_image("style", style).to(device))
        targets = {n: gram_matrix(theirs[n]) for n in names}
        weights = {n: 1.0 / (len(names) * max(float(targets[n].pow(2).sum()), _TINY)) for n in names}
        return float(style_loss(mine, targets, weights))


__all__ = ["CONTENT_WEIGHT", "INITS", "OPTIMIZERS", "STEPS", "STYLE_WEIGHT", "TV_WEIGHT", "StyleResult",
           "check_settings", "content_loss", "gram_matrix", "style_distance", "style_loss", "transfer_style"]
