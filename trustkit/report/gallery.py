"""The "clean + perturbation = adversarial" gallery of one cell, rendered to embeddable images."""
from __future__ import annotations

from typing import Any, Sequence

from trustkit.images import image_uri, perturbation_uri
from trustkit.images import unpack_images


def render_gallery(gallery: dict[str, Any], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """One item per gallery image of a bench cell's result (``evaluate_cell``'s ``gallery``): clean /
    perturbation / adversarial data URIs, labels and confidences."""
    if not gallery or not gallery.get("true"):
        return []
    x, x_adv = unpack_images(gallery["x"]), unpack_images(gallery["x_adv"])
    items = []
    for i, true in enumerate(gallery["true"]):
        adv_label = gallery["adv_label"][i]
        items.append({
            "clean": image_uri(x[i]), "adv": image_uri(x_adv[i]), "delta": perturbation_uri(x_adv[i] - x[i]),
            "true": class_names[true], "clean_pred": class_names[gallery["clean_label"][i]],
            "clean_conf": gallery["clean_confidence"][i], "adv_pred": class_names[adv_label],
            "adv_conf": gallery["adv_confidence"][i], "fooled": adv_label != true,
            "linf": gallery["linf"][i], "l2": gallery["l2"][i],
        })
    return items
