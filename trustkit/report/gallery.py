"""The "clean + perturbation = adversarial" gallery of one cell, rendered to embeddable images."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from trustkit.report.images import image_uri, perturbation_uri


def render_gallery(x: torch.Tensor, y: torch.Tensor, clean: Any, outcome: Any, gallery_index: torch.Tensor,
                   class_names: Sequence[str]) -> list[dict[str, Any]]:
    """One item per gallery image: clean/perturbation/adversarial data URIs, labels and confidences."""
    items = []
    for slot, i in enumerate(gallery_index.tolist()):
        x_adv = outcome.gallery_x_adv[slot]
        adv_label = int(outcome.adversarial.label[i])
        items.append({
            "clean": image_uri(x[i]), "adv": image_uri(x_adv), "delta": perturbation_uri(x_adv - x[i]),
            "true": class_names[int(y[i])], "clean_pred": class_names[int(clean.label[i])],
            "clean_conf": float(clean.confidence[i]), "adv_pred": class_names[adv_label],
            "adv_conf": float(outcome.adversarial.confidence[i]), "fooled": adv_label != int(y[i]),
            "linf": float(outcome.linf[i]), "l2": float(outcome.l2[i]),
        })
    return items
