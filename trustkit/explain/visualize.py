"""Class-score maximisation and feature visualisation: optimise an input so a class logit or one channel of a
layer is as large as possible, under the priors that make the result look like an image.

Simonyan et al. (2014) maximise the unnormalised class score ``S_c(x) − λ‖x − x̄‖²``; Yosinski et al. (2015) add
the image priors of deep visualisation — decay, random jitter and periodic blur — and Mahendran & Vedaldi's
total variation (the seed deck's TV_β prior) keeps neighbouring pixels close. Each step here does:

1. shift the current image by a random roll of up to ``jitter`` pixels (the model must like the pattern
   wherever it sits, not one pixel-exact arrangement of it);
2. one Adam step on ``−objective + l2·mean((x − l2_center)²) + tv·TV_β(x)`` through that view;
3. clamp the pixels to [0, 1], and every ``blur_every`` steps blur the image with a Gaussian of ``blur_sigma``
   pixels (it damps the high frequencies the gradient keeps adding).

The logit is maximised, not the softmax probability: a probability also rises when the other classes' scores
fall, which the optimiser finds easier than making the class itself appear (Simonyan et al., section 2).

**Parameterisation.** The pixels themselves are the optimised parameter, kept in [0, 1] by clamping after each
step (projected gradient ascent), rather than ``x = sigmoid(w)``: a sigmoid's gradient vanishes as pixels
saturate, and saturated pixels — black background, white strokes — are what digits and MNIST are made of, so
those pixels would freeze and the decay and TV priors would barely move them. With clamping, every pixel gets
the same step size (Adam's, ``lr`` in pixel units per step) and the image is exactly what the model sees: the
model contract's inputs in [0, 1] (normalisation is inside the model).

Targets are functions of [0, 1] images: a classifier's logits, one channel of a layer named as in
:mod:`trustkit.models.features` (``relu2``, ``net.3``), or a GAN's discriminator seen through
:class:`~trustkit.explain.discriminator.DiscriminatorView` (which maps the pixels to the [-1, 1] range the discriminator was trained on).
Regulariser weights are per pixel (means over pixels), so one setting suits 8×8 digits and 32×32 CIFAR alike.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import torch
from torch import nn

from trustkit.errors import InvalidArgumentError, ShapeMismatchError
from trustkit.explain.priors import Center, centre_image, gaussian_blur, l2_penalty, total_variation
from trustkit.models.features import FeatureExtractor, LayerInfo, describe_layers, resolve_layers
from trustkit.models.inference import input_gradients_only

Objective = Callable[[torch.Tensor], torch.Tensor]
"""``objective(images N×C×H×W in [0, 1]) -> N values`` to maximise, differentiable in the images."""

# Defaults chosen on the digits models (8×8; zoo cnn, its PGD- and FGSM-RS-trained versions, the ACGAN
# discriminator), with the objective divided by its spread over real test images (``scale``, as the maximize
# study does; raw logits of these models spread 3-9): every class ends predicted (softmax 0.92-1.0) and the
# images read as digits. Without scale, l2 = tv = 1 weigh a little less against raw logits of ~20; a tenth of
# that left salt-and-pepper images. A 1-pixel jitter, an eighth of an 8×8 image, blurred the strokes away,
# hence the jitter that grows with the image (None: side // 16 pixels, 0 on 8×8, 2 on 32×32).
STEPS = 200
LR = 0.05
L2 = 1.0
TV = 1.0
TV_BETA = 2.0
JITTER: int | None = None
BLUR_EVERY = 4
BLUR_SIGMA = 0.5
INIT_NOISE = 0.1



class Maximized(NamedTuple):
    """The result of a maximisation: ``images`` N×C×H×W in [0, 1] (CPU, float32) and ``trace`` N×(steps + 1)
    (float32): the objective (a logit, or a mean activation) at the start image, at each step's forward pass
    (through that step's jittered view) and, last, at the final image without jitter."""

    images: torch.Tensor
    trace: torch.Tensor

    @property
    def start(self) -> torch.Tensor:
        """The objective of the start images (N)."""
        return self.trace[:, 0]

    @property
    def end(self) -> torch.Tensor:
        """The objective of the final images (N)."""
        return self.trace[:, -1]


# --- checks ----------------------------------------------------------------------------------------------

def _finite(name: str, value: float, *, low: float = 0.0, strict: bool = False, fix: str = "") -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a number, got {value!r}; {fix or 'pass e.g. ' + name + '=0.1'}") \
            from None
    bad = not math.isfinite(number) or (number <= low if strict else number < low)
    if bad:
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise InvalidArgumentError(f"{name} must be a finite number {bound}, got {value}; {fix or 'pass e.g. 0.1'}")
    return number


def _whole(name: str, value: int, *, low: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, float) and value.is_integer()):
        raise InvalidArgumentError(f"{name} must be a whole number, got {value!r}; {fix}")
    if int(value) < low:
        raise InvalidArgumentError(f"{name} must be at least {low}, got {value}; {fix}")
    return int(value)


def auto_jitter(shape: Sequence[int]) -> int:
    """The default jitter of images of ``shape`` (C×H×W): the shorter side // 16 pixels."""
    return min(int(shape[-2]), int(shape[-1])) // 16


def check_settings(*, steps: int, lr: float, l2: float, tv: float, tv_beta: float, jitter: int | None,
                   blur_every: int, blur_sigma: float) -> None:
    """Refuse impossible optimisation settings in one line each (InvalidArgumentError) before any work."""
    _whole("steps", steps, low=1, fix="pass steps >= 1, e.g. 200")
    _finite("lr", lr, strict=True, fix="pass the Adam step size in pixel units, e.g. 0.05")
    _finite("l2", l2, fix="pass 0 to turn the L2 decay off, e.g. 0.5")
    _finite("tv", tv, fix="pass 0 to turn the total-variation prior off, e.g. 0.5")
    _finite("tv_beta", tv_beta, low=1.0, fix="pass the TV exponent β >= 1, e.g. 2")
    if jitter is not None:
        _whole("jitter", jitter, low=0, fix="pass the largest random shift in pixels, 0 for none, e.g. 1")
    _whole("blur_every", blur_every, low=0, fix="pass a step interval, 0 for no blur, e.g. 4")
    if blur_every:
        _finite("blur_sigma", blur_sigma, strict=True, fix="pass the blur's standard deviation in pixels, e.g. 0.5")


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ShapeMismatchError(f"image shape must be C×H×W with positive sizes, got {shape}; pass e.g. (1, 8, 8)")
    return shape  # type: ignore[return-value]


def _device_of(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        from trustkit.runtime import select_device

        return select_device(device)
    return next(iter(model.parameters()), torch.empty(0)).device


# --- the optimisation ------------------------------------------------------------------------------------

def maximize(objective: Objective, shape: Sequence[int], *, n: int = 1, steps: int = STEPS, lr: float = LR,
             l2: float = L2, l2_center: Center = 0.5, tv: float = TV, tv_beta: float = TV_BETA,
             jitter: int | None = JITTER, blur_every: int = BLUR_EVERY, blur_sigma: float = BLUR_SIGMA,
             init: torch.Tensor | None = None, init_noise: float = INIT_NOISE, seed: int = 0,
             device: str | torch.device = "cpu", scale: float | Sequence[float] | torch.Tensor | None = None,
             callback: Callable[[int], None] | None = None) -> Maximized:
    """Maximise ``objective`` over ``n`` images of ``shape`` (C×H×W) in [0, 1], each on its own (the objective
    is summed over the batch, and Adam's steps are per pixel, so images do not interact).

    ``steps`` Adam steps of size ``lr`` (pixel units); ``l2`` weighs the per-pixel mean squared distance from
    ``l2_center`` (a pixel value, one per channel, or a C×H×W image such as the data's mean image), ``tv`` the
    TV_β prior (:func:`total_variation`, exponent ``tv_beta``); ``jitter`` is the largest random roll in pixels
    (None: :func:`auto_jitter`; none on the first step, so the trace starts at the start image), ``blur_every``
    the interval in steps of a Gaussian blur of ``blur_sigma`` pixels (0: never).
    Start images are ``init`` (N×C×H×W in [0, 1]) or ``l2_center`` plus uniform noise of ±``init_noise``, drawn
    from ``seed``, as are the jitter shifts, so a run is reproducible. ``callback(step)`` runs after each step.

    ``scale`` (one value or one per image, > 0) divides the objective inside the loss: with the spread of the
    objective over real images (:func:`real_statistics`) the priors weigh the same against a standard model's
    large logits, a robust model's small ones and a layer's activations. The trace stays in the objective's own
    units.
    """
    check_settings(steps=steps, lr=lr, l2=l2, tv=tv, tv_beta=tv_beta, jitter=jitter, blur_every=blur_every,
                   blur_sigma=blur_sigma)
    shape = _check_shape(shape)
    jitter = auto_jitter(shape) if jitter is None else int(jitter)
    _whole("n", n, low=1, fix="pass the number of images to optimise, e.g. 1")
    init_noise = _finite("init_noise", init_noise, fix="pass the start noise amplitude in pixels, e.g. 0.1")
    device = torch.device(device)
    generator = torch.Generator().manual_seed(int(seed))
    centre = centre_image(l2_center, shape)
    if init is not None:
        start = torch.as_tensor(init, dtype=torch.float32)
        if start.dim() == 3:
            start = start.unsqueeze(0).expand(n, *shape)
        if tuple(start.shape) != (n, *shape):
            raise ShapeMismatchError(f"init has shape {tuple(start.shape)}, expected {(n, *shape)}; pass N×C×H×W "
                                     "images in [0, 1]")
        if not torch.isfinite(start).all():
            raise InvalidArgumentError("init holds NaN or infinite pixels; pass images in [0, 1]")
        start = start.clamp(0, 1)
    else:
        noise = torch.rand((n, *shape), generator=generator) * 2 - 1
        start = (centre.expand(n, *shape) + init_noise * noise).clamp(0, 1)
    divisor = torch.ones(n) if scale is None else torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
    if divisor.numel() not in (1, n):
        raise ShapeMismatchError(f"scale has {divisor.numel()} values for {n} images; pass one or one per image")
    divisor = divisor.expand(n)
    if not (torch.isfinite(divisor).all() and (divisor > 0).all()):
        raise InvalidArgumentError(f"scale must be finite and > 0, got {scale}; pass the objective's spread on real "
                                   "images, or None")
    divisor = divisor.clone().to(device)
    x = start.clone().to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    centre = centre.to(device)
    trace = torch.empty(n, steps + 1)
    height, width = shape[1], shape[2]
    for step in range(steps):
        if jitter and step > 0:
            dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
            view = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        else:
            view = x
        value = objective(view).reshape(n)
        trace[:, step] = value.detach().float().cpu()
        loss = -(value / divisor).sum()
        if l2:
            loss = loss + l2 * (x - centre).pow(2).flatten(1).mean(1).sum()
        if tv and height > 1 and width > 1:
            loss = loss + tv * total_variation(x, tv_beta).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            if blur_every and (step + 1) % blur_every == 0:
                x.copy_(gaussian_blur(x, blur_sigma))
            x.clamp_(0, 1)
        if callback is not None:
            callback(step)
    with torch.no_grad():
        final = x.detach()
        trace[:, steps] = objective(final).reshape(n).float().cpu()
    return Maximized(final.cpu().float(), trace)


# --- targets ---------------------------------------------------------------------------------------------

def output_size(model: nn.Module, shape: Sequence[int], device: torch.device | None = None) -> int:
    """How many logits ``model`` returns for one image of ``shape`` (ShapeMismatchError if it is not N×K)."""
    device = device or _device_of(model, None)
    with torch.no_grad(), input_gradients_only(model):
        out = model(torch.full((1, *shape), 0.5, device=device))
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeMismatchError(f"the model returns {got} for one image, expected logits of shape (1, K); "
                                 "maximise a layer's channel instead, or wrap the model")
    return int(out.shape[1])


def _indices(name: str, values: int | Sequence[int], size: int, what: str) -> list[int]:
    items = [values] if isinstance(values, int) else list(values)
    if not items:
        raise InvalidArgumentError(f"no {name} given; pass one or more in 0..{size - 1}")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < size:
            raise InvalidArgumentError(f"{name} {item!r} is out of range: {what} has {size}; pass one in "
                                       f"0..{size - 1}")
    return [int(i) for i in items]


def class_objective(model: nn.Module, class_index: int | Sequence[int], shape: Sequence[int],
                    device: torch.device | None = None) -> tuple[Objective, list[int]]:
    """``(objective, classes)``: image i's value is logit ``classes[i]`` of ``model`` (unnormalised score).
    Class indices outside the model's outputs are an InvalidArgumentError."""
    size = output_size(model, shape, device)
    classes = _indices("class index", class_index, size, f"the model's output ({size} logits)")

    def objective(x: torch.Tensor) -> torch.Tensor:
        index = torch.tensor(classes, device=x.device).reshape(-1, 1)
        return model(x).float().gather(1, index).squeeze(1)

    return objective, classes


def find_layer(model: nn.Module, layer: str | LayerInfo, shape: Sequence[int]) -> LayerInfo:
    """The :class:`LayerInfo` of ``layer`` (alias such as ``relu2`` or a module name) in ``model`` for inputs of
    ``shape``; an unknown name raises one line listing the model's layers."""
    if isinstance(layer, LayerInfo):
        return layer
    return resolve_layers(describe_layers(model, tuple(shape)), [str(layer)])[0]


def feature_objective(model: nn.Module, layer: str | LayerInfo, channel: int | Sequence[int],
                      shape: Sequence[int]) -> tuple[Objective, LayerInfo, list[int]]:
    """``(objective, layer, channels)``: image i's value is the mean activation of channel ``channels[i]`` of
    ``layer`` (over its spatial positions; a fully connected layer's unit itself)."""
    info = find_layer(model, layer, shape)
    if not info.shape:
        raise ShapeMismatchError(f"layer {info.label} returns one number per image; pick a layer with channels")
    channels = _indices("channel", channel, info.shape[0], f"layer {info.label} ({info.shape_text})")
    extractor = FeatureExtractor(model, info)

    def objective(x: torch.Tensor) -> torch.Tensor:
        features = extractor(x).float()
        index = torch.tensor(channels, device=x.device)
        chosen = features[torch.arange(len(index), device=x.device), index]
        return chosen.reshape(len(index), -1).mean(1)

    return objective, info, channels


def maximize_class(model: nn.Module, class_index: int | Sequence[int], shape: Sequence[int], *,
                   steps: int = STEPS, lr: float = LR, l2: float = L2, l2_center: Center = 0.5,
                   tv: float = TV, tv_beta: float = TV_BETA, jitter: int | None = JITTER, blur_every: int = BLUR_EVERY,
                   blur_sigma: float = BLUR_SIGMA, init: torch.Tensor | None = None, seed: int = 0,
                   device: str | torch.device | None = None, scale: float | Sequence[float] | None = None,
                   callback: Callable[[int], None] | None = None) -> Maximized:
    """Images (one per class index) that maximise ``model``'s logit of that class; ``trace`` is the logit per
    step. ``model`` takes N×C×H×W images in [0, 1] of ``shape`` and returns logits N×K; it is put in eval mode
    and its weights get no gradients. Settings as in :func:`maximize` (``device`` default: the model's)."""
    check_settings(steps=steps, lr=lr, l2=l2, tv=tv, tv_beta=tv_beta, jitter=jitter, blur_every=blur_every,
                   blur_sigma=blur_sigma)
    shape = _check_shape(shape)
    torch_device = _device_of(model, device)
    with input_gradients_only(model):
        objective, classes = class_objective(model, class_index, shape, torch_device)
        return maximize(objective, shape, n=len(classes), steps=steps, lr=lr, l2=l2, l2_center=l2_center, tv=tv,
                        tv_beta=tv_beta, jitter=jitter, blur_every=blur_every, blur_sigma=blur_sigma, init=init,
                        seed=seed, device=torch_device, scale=scale, callback=callback)


def maximize_feature(model: nn.Module, layer: str | LayerInfo, channel: int | Sequence[int], shape: Sequence[int],
                     *, steps: int = STEPS, lr: float = LR, l2: float = L2,
                     l2_center: Center = 0.5, tv: float = TV, tv_beta: float = TV_BETA,
                     jitter: int | None = JITTER, blur_every: int = BLUR_EVERY, blur_sigma: float = BLUR_SIGMA,
                     init: torch.Tensor | None = None, seed: int = 0, device: str | torch.device | None = None,
                     scale: float | Sequence[float] | None = None,
                     callback: Callable[[int], None] | None = None) -> Maximized:
    """Images (one per channel) that maximise the mean activation of that channel of ``layer`` (an alias such
    as ``relu2`` or a module name, see :mod:`trustkit.models.features`); ``trace`` is that activation per step.
    Settings as in :func:`maximize_class`."""
    check_settings(steps=steps, lr=lr, l2=l2, tv=tv, tv_beta=tv_beta, jitter=jitter, blur_every=blur_every,
                   blur_sigma=blur_sigma)
    shape = _check_shape(shape)
    torch_device = _device_of(model, device)
    with input_gradients_only(model):
        objective, _, channels = feature_objective(model, layer, channel, shape)
        return maximize(objective, shape, n=len(channels), steps=steps, lr=lr, l2=l2, l2_center=l2_center, tv=tv,
                        tv_beta=tv_beta, jitter=jitter, blur_every=blur_every, blur_sigma=blur_sigma, init=init,
                        seed=seed, device=torch_device, scale=scale, callback=callback)


@torch.no_grad()
def real_statistics(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, *,
                    layer: str | LayerInfo | None = None, batch_size: int = 256,
                    device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` per output of the objectives on real ``images`` (N×C×H×W in [0, 1]): per logit, or with
    ``layer`` per channel's mean activation. With ``labels``, a logit's mean is over images of its own class
    (the class's typical score), its std over all images; without, both over all images. Unit: the objective's."""
    torch_device = _device_of(model, device)
    with input_gradients_only(model):
        extractor = None if layer is None else FeatureExtractor(model, find_layer(model, layer, images.shape[1:]))

        def reduce(x: torch.Tensor) -> torch.Tensor:
            if extractor is None:
                return model(x).float()
            features = extractor(x).float()
            return features.flatten(2).mean(2) if features.dim() > 2 else features

        values = torch.cat([reduce(images[i:i + batch_size].to(torch_device)).cpu()
                            for i in range(0, len(images), batch_size)])
    std = values.std(0, unbiased=False) if len(values) > 1 else torch.zeros(values.shape[1])
    if labels is None or layer is not None or values.shape[1] == 1:
        return values.mean(0), std
    mean = torch.stack([values[labels == k, k].mean() if bool((labels == k).any()) else torch.tensor(math.nan)
                        for k in range(values.shape[1])])
    return mean, std


__all__ = ["Center", "Maximized", "Objective", "auto_jitter", "check_settings", "class_objective", "feature_objective",
           "find_layer", "gaussian_blur", "l2_penalty", "maximize", "maximize_class", "maximize_feature", "output_size",
           "real_statistics", "total_variation"]
