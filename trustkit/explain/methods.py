"""Attribution methods, built on Captum: what part of an image a classifier's score for a class rests on.

Every method maps images ``x`` (N×C×H×W in [0, 1]; the model normalises inside) and target classes ``target``
(N) to attributions of the same shape as ``x``, one value per input pixel and channel. :func:`heatmap` reduces
them to one non-negative map per image (N×H×W), the form the reports, the faithfulness curves and the
randomisation test work on.

==================== ===================================================================================
grad                 |∂ score / ∂ x| (Simonyan et al. 2014), Captum ``Saliency``
input-x-grad         x ⊙ ∂ score / ∂ x (Shrikumar et al. 2016), Captum ``InputXGradient``
smoothgrad           gradient averaged over noisy copies of x (Smilkov et al. 2017), Captum ``NoiseTunnel``
integrated-gradients (x − x₀) ⊙ ∫ ∂ score(x₀ + α(x − x₀)) / ∂ x dα from a black baseline x₀
                     (Sundararajan et al. 2017), Captum ``IntegratedGradients``; sums to score(x) − score(x₀)
gradcam              ReLU(Σ_k α_k A^k) of the last convolution with spatial extent, upsampled
                     (Selvaraju et al. 2017), Captum ``LayerGradCam``
occlusion            drop of the score when a square patch is blacked out (Zeiler & Fergus 2014),
                     Captum ``Occlusion``; needs no gradient
==================== ===================================================================================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from trustkit.errors import InvalidArgumentError
from trustkit.models.features import LayerInfo, describe_layers, resolve_layers
from trustkit.models.inference import input_gradients_only
from trustkit.registry import Registry

# (model, x, target, layer module or None, options) -> attributions shaped like x
Attribute = Callable[[nn.Module, torch.Tensor, torch.Tensor, nn.Module | None, dict[str, Any]], torch.Tensor]


@dataclass(frozen=True)
class AttributionMethod:
    """A named attribution method: its Captum computation, whether it needs a layer, and its options
    (name -> default) with what they mean."""

    name: str
    compute: Attribute
    uses_layer: bool = False
    defaults: tuple[tuple[str, Any], ...] = ()
    needs_gradient: bool = True


def _saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: nn.Module | None,
              options: dict[str, Any]) -> torch.Tensor:
    from captum.attr import Saliency

    return Saliency(model).attribute(x, target=target, abs=True)


def _input_x_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: nn.Module | None,
                      options: dict[str, Any]) -> torch.Tensor:
    from captum.attr import InputXGradient

    return InputXGradient(model).attribute(x, target=target)


def _smoothgrad(model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: nn.Module | None,
                options: dict[str, Any]) -> torch.Tensor:
    from captum.attr import NoiseTunnel, Saliency

    # noise σ is a fraction of the pixel range [0, 1]; Smilkov et al. found 10-20% best
    return NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=int(options["samples"]),
                                                  nt_samples_batch_size=int(options["samples"]),
                                                  stdevs=float(options["noise"]), target=target, abs=True)


def _integrated_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: nn.Module | None,
                          options: dict[str, Any]) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    return IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target,
                                                n_steps=int(options["steps"]), method="gausslegendre")


def _gradcam(model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: nn.Module | None,
             options: dict[str, Any]) -> torch.Tensor:
    from captum.attr import LayerAttribution, LayerGradCam

    assert layer is not None
    cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    if cam.ndim != 4:
        raise InvalidArgumentError(f"Grad-CAM needs a convolutional layer (N×C×H×W output), got output of shape "
                                   f"{tuple(cam.shape)}; pick one with --layer")
    cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return cam.expand(-1, x.shape[1], -1, -1) / x.shape[1]  # shaped like x; the channel sum is the map


def _occlusion(model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: nn.Module | None,
               options: dict[str, Any]) -> torch.Tensor:
    from captum.attr import Occlusion

    side = min(x.shape[-2:])
    window = int(options["window"]) or max(2, side // 7)  # about a seventh of the image: a stroke, an eye
    window = min(window, side)
    stride = max(1, window // 2)
    return Occlusion(model).attribute(x, target=target, sliding_window_shapes=(x.shape[1], window, window),
                                      strides=(x.shape[1], stride, stride), baselines=0.0,
                                      perturbations_per_eval=16)


ATTRIBUTION_METHODS: Registry[AttributionMethod] = Registry("attribution method")
ATTRIBUTION_METHODS.add("grad", AttributionMethod("grad", _saliency),
                        summary="|gradient of the class score| (Simonyan et al. 2014; Captum Saliency)",
                        aliases=("saliency", "gradient", "vanilla-gradient"))
ATTRIBUTION_METHODS.add("input-x-grad", AttributionMethod("input-x-grad", _input_x_gradient),
                        summary="input × gradient (Shrikumar et al. 2016; Captum InputXGradient)",
                        aliases=("inputxgradient", "input-x-gradient", "gradient-x-input"))
ATTRIBUTION_METHODS.add("smoothgrad", AttributionMethod("smoothgrad", _smoothgrad,
                                                        defaults=(("samples", 16), ("noise", 0.15))),
                        summary="gradient averaged over 16 copies with 15% noise (Smilkov et al. 2017)",
                        aliases=("smooth-grad",))
ATTRIBUTION_METHODS.add("integrated-gradients", AttributionMethod("integrated-gradients", _integrated_gradients,
                                                                  defaults=(("steps", 32),)),
                        summary="integrated gradients from a black image, 32 Gauss-Legendre steps "
                                "(Sundararajan et al. 2017)", aliases=("ig", "integrated-gradient"))
ATTRIBUTION_METHODS.add("gradcam", AttributionMethod("gradcam", _gradcam, uses_layer=True),
                        summary="Grad-CAM of the last convolution with spatial extent (Selvaraju et al. 2017)",
                        aliases=("grad-cam",))
ATTRIBUTION_METHODS.add("occlusion", AttributionMethod("occlusion", _occlusion, defaults=(("window", 0),),
                                                                needs_gradient=False),
                        summary="score drop under a sliding black patch (Zeiler & Fergus 2014); no gradients",
                        aliases=("occlude",))

DEFAULT_METHODS = ("grad", "smoothgrad", "integrated-gradients", "gradcam", "occlusion")


def gradcam_layer(layers: list[LayerInfo], name: str | None = None) -> LayerInfo:
    """The layer Grad-CAM reads: ``name`` when given, else the last convolution (or the activation after it)
    whose output still has a spatial extent of at least 2×2 — a 1×1 map cannot say where."""
    if name:
        return resolve_layers(layers, [name])[0]
    spatial = [layer for layer in layers if layer.kind == "conv" and len(layer.shape) == 3
               and min(layer.shape[1:]) >= 2]
    if not spatial:
        raise InvalidArgumentError("this model has no convolution with a spatial output of at least 2×2, which "
                                   "Grad-CAM needs; use another method (grad, integrated-gradients, occlusion)")
    return spatial[-1]


def method_options(method: AttributionMethod, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The method's options with its defaults filled in. An option it does not take, an integer option given
    a fraction, or a value that is not finite and positive (``window`` may be 0: automatic) is one line."""
    import math

    merged = dict(method.defaults)
    for key, value in (options or {}).items():
        if key not in merged:
            raise InvalidArgumentError(f"attribution method '{method.name}' takes no option '{key}'; it takes: "
                                       f"{', '.join(merged) or 'none'}")
        default = merged[key]
        least = 0 if key == "window" else 1
        if isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidArgumentError(f"{method.name} option {key} must be an integer >= {least}, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise InvalidArgumentError(f"{method.name} option {key} must be a finite number > 0, got {value!r}")
        merged[key] = value
    return merged


def attribute(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str | AttributionMethod, *,
              layer: str | None = None, batch_size: int = 64, options: dict[str, Any] | None = None,
              device: torch.device | None = None) -> torch.Tensor:
    """Attributions (N×C×H×W, float32, on the CPU) of ``model``'s logit for class ``target`` (N) to the pixels
    of ``x`` (N×C×H×W in [0, 1]) by ``method`` (a name of :data:`ATTRIBUTION_METHODS` or a method object).

    ``layer`` names Grad-CAM's layer (default: :func:`gradcam_layer`). The model runs in eval mode without
    weight gradients; batches of ``batch_size`` images go to ``device`` (default: the model's)."""
    if isinstance(method, str):
        method = ATTRIBUTION_METHODS.get(method)
    opts = method_options(method, options)
    device = device or next(iter(model.parameters()), torch.empty(0)).device
    module = None
    if method.uses_layer:
        info = gradcam_layer(describe_layers(model, tuple(x.shape[1:])), layer)
        module = dict(model.named_modules())[info.name]
    parts = []
    with input_gradients_only(model):
        for start in range(0, len(x), batch_size):
            # the input requires grad before Captum sees it (else Captum warns and sets it itself)
            xb = x[start:start + batch_size].to(device).float().requires_grad_(method.needs_gradient)
            tb = torch.as_tensor(target[start:start + batch_size]).to(device).long()
            parts.append(method.compute(model, xb, tb, module, opts).detach().float().cpu())
    return torch.cat(parts) if parts else torch.empty(0, *x.shape[1:])


def heatmap(attributions: torch.Tensor) -> torch.Tensor:
    """One non-negative evidence map per image (N×H×W): the absolute attribution summed over channels."""
    return attributions.abs().sum(1)
