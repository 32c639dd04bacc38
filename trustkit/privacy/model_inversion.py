"""Model inversion: recover a class representative from a classifier alone (Fredrikson et al. 2015, MIFace).

For a face classifier whose classes are people, the representative of class c is the image x in [0, 1]
that makes the model most confident that x shows c: gradient descent on the cost 1 − p_c(x), with the
softmax probability p_c, from a fixed start image. It needs only the model (white-box gradients), no data.
trustkit runs ART's implementation, ``art.attacks.inference.model_inversion.MIFace``.

Start image: Fredrikson et al. start from a constant (all-zero) feature vector; ART's default start is
all zeros (black). trustkit starts from a *grey* image at the data set's mean pixel value (``spec.mean``
per channel), a constant that is neutral in the model's normalised input space (it normalises to 0), so
no class is favoured by a dark or bright start. The same start is used for every class.

Caveats (also in docs/privacy.md):

- The representative is what the *model* considers typical of the class, not a training image: on a model
  that generalises it can resemble the person's average face; on an over-parametrised CNN it is often an
  adversarial-looking pattern that the model classifies with high confidence yet no human would recognise.
  High target confidence therefore shows the optimisation succeeded, not that the face leaked.
- ART 1.20.1's loop keeps an image active (still updated) while its cost is ≤ ``threshold`` *or* not lower
  than the worst cost in the last ``window_length`` steps, and stops it otherwise; with the default
  threshold 0.99 it stops a class once its probability is below 1% while still improving. Measured on the
  Olivetti cnn from the grey start: the classes whose start probability is below 1% (e.g. person 9, 0.93%)
  stop after 1 step at their start confidence, the others run all ``max_iter`` steps. trustkit passes
  ``threshold`` through, counts the steps per class (``iterations``) and warns when a class stops early
  below 1%. trustkit's default is therefore ``threshold=1.0``, which always runs the full ``max_iter`` steps;
  pass ART's 0.99 to reproduce ART's own behaviour.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from trustkit.data.base import DatasetSpec
from trustkit.errors import InvalidArgumentError
from trustkit.privacy.membership import probability_classifier
from trustkit.runtime import log, progress, select_device


@dataclass
class ModelInversionResult:
    """Result of :func:`run_model_inversion`.

    ``images``: K×C×H×W float tensor in [0, 1], one representative per class in ``classes`` (same order).
    ``rows``: one dict per class with ``class`` (index), ``class_name``, ``target_confidence`` (the model's
    softmax probability of that class on its representative, in [0, 1]), ``iterations`` (gradient steps ART
    took before its stopping rule or ``max_iter`` ended the class) and ``seconds`` (wall time of that class's
    inversion).
    """

    images: torch.Tensor
    classes: list[int]
    rows: list[dict[str, object]] = field(default_factory=list)


def start_image(spec: DatasetSpec) -> torch.Tensor:
    """C×H×W constant image at the data set's per-channel mean pixel value (the grey start, in [0, 1])."""
    mean = torch.tensor(spec.mean, dtype=torch.float32).clamp(0, 1)
    return mean.view(-1, 1, 1).expand(spec.shape).clone()


def run_model_inversion(model: nn.Module, spec: DatasetSpec, *, classes: list[int] | None = None, max_iter: int = 1000,
                        window_length: int = 100, threshold: float = 1.0, learning_rate: float = 0.1,
                        device: torch.device | str = "cpu") -> ModelInversionResult:
    """MIFace class representatives for ``classes`` (default: every class of ``spec``) of ``model``.

    ``max_iter`` gradient steps at most per class, ``learning_rate`` the step size on the gradient of
    p_class (pixel units per unit of probability gradient), ``window_length``/``threshold`` ART's stopping
    rule (see the module docstring). Each class is inverted on its own, from the grey start, and timed.
    """
    from art.attacks.inference.model_inversion import MIFace

    classes = list(range(spec.num_classes)) if classes is None else [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < spec.num_classes]
    if bad:
        raise InvalidArgumentError(f"class index {bad[0]} is outside 0..{spec.num_classes - 1} for {spec.name}")
    if max_iter < 1 or window_length < 1 or learning_rate <= 0:
        raise InvalidArgumentError("max_iter and window_length must be ≥ 1 and learning_rate > 0")
    torch_device = select_device(device)
    model = model.to(torch_device).eval()
    classifier = probability_classifier(model, spec.shape, spec.num_classes)
    steps = [0]
    class_gradient = classifier.class_gradient

    def counted_class_gradient(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - ART's signature
        steps[0] += 1  # MIFace takes exactly one class gradient per step: this counts its iterations
        return class_gradient(*args, **kwargs)

    classifier.class_gradient = counted_class_gradient
    attack = MIFace(classifier, max_iter=max_iter, window_length=window_length, threshold=threshold,
                    learning_rate=learning_rate, batch_size=1, verbose=False)
    start = start_image(spec).unsqueeze(0).numpy()
    images, rows = [], []
    with progress("model inversion", len(classes)) as bar:
        for target in classes:
            started, steps[0] = time.perf_counter(), 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = attack.infer(start.copy(), y=np.array([target]))
            seconds = time.perf_counter() - started
            image = torch.from_numpy(np.asarray(found, dtype=np.float32)).clamp_(0, 1)
            with torch.no_grad():
                confidence = torch.softmax(model(image.to(torch_device)).float(), 1)[0, target].item()
            if steps[0] < max_iter and confidence < 1 - threshold:
                log(f"model inversion: ART's stopping rule ended class {target} after {steps[0]} step(s) at confidence "
                    f"{confidence:.3f}; pass threshold=1.0 to run all {max_iter} steps")
            images.append(image[0])
            rows.append({"class": target, "class_name": spec.class_names[target], "target_confidence": confidence,
                         "iterations": steps[0], "seconds": seconds})
            bar.advance()
    stacked = torch.stack(images) if images else torch.empty((0, *spec.shape))
    return ModelInversionResult(images=stacked, classes=classes, rows=rows)


def gallery_figure(result: ModelInversionResult, real_means: torch.Tensor | None = None, columns: int = 8) -> str:
    """PNG data URI: each class's representative (titled with class and confidence), and beneath it the
    class's mean real training image when ``real_means`` (K×C×H×W in [0, 1], same order as
    ``result.classes``) is given. ``columns`` classes per row of the grid."""
    from trustkit.images import figure_uri, new_figure

    count = len(result.classes)
    if count == 0:
        raise InvalidArgumentError("no representatives to show")
    if real_means is not None and len(real_means) != count:
        raise InvalidArgumentError(f"real_means holds {len(real_means)} images for {count} classes")
    columns = max(1, min(columns, count))
    blocks = -(-count // columns)
    per_block = 2 if real_means is not None else 1
    fig, _ = new_figure(1.3 * columns, 1.45 * blocks * per_block)
    fig.clf()
    confidences = {row["class"]: row["target_confidence"] for row in result.rows}
    grid = fig.add_gridspec(blocks * per_block, columns)
    for k, target in enumerate(result.classes):
        block, column = divmod(k, columns)
        shown = [(result.images[k], f"{target}: p={confidences.get(target, float('nan')):.3f}")]
        if real_means is not None:
            shown.append((real_means[k], "mean real"))
        for offset, (image, title) in enumerate(shown):
            ax = fig.add_subplot(grid[block * per_block + offset, column])
            array = image.detach().float().clamp(0, 1).cpu()
            if array.shape[0] == 1:
                ax.imshow(array[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(array.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    return figure_uri(fig)
