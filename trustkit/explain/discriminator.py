"""A GAN's discriminator as a target of class-score maximisation (:mod:`trustkit.explain.visualize`): a classifier
of [0, 1] images over its class head or its real/fake logit, and how its outputs are named and read."""
from __future__ import annotations

import inspect
from typing import Sequence

import torch
from torch import nn

from trustkit.errors import InvalidArgumentError
from trustkit.generative import AdversarialModel, GenerativeModel
from trustkit.generative.base import to_signed

HEADS = ("auto", "class", "source")


def discriminator_heads(model: GenerativeModel | type[GenerativeModel]) -> list[str]:
    """The heads :class:`DiscriminatorView` can show for ``model``, the default first: "class" (ACGAN's
    auxiliary classifier, a conditional GAN's per-class realness) and/or "source" (the real/fake logit of an
    unconditional D, a WGAN critic's score)."""
    family = model if isinstance(model, type) else type(model)
    if not issubclass(family, AdversarialModel):
        raise InvalidArgumentError(f"{family.__name__} is not a GAN and has no discriminator; pick dcgan, acgan, "
                                   "cgan or wgan-gp")
    if hasattr(family, "classify"):  # ACGAN: a class head and an unconditional real/fake head
        return ["class", "source"]
    # a conditional GAN's D judges "real image of class y": it has no verdict without a class
    return ["class"] if family.conditional else ["source"]


class DiscriminatorView(nn.Module):
    """A GAN's discriminator as a classifier of [0, 1] images: ``forward(x)`` returns logits N×K.

    ``head`` "class": ACGAN's auxiliary class logits (K = the data set's classes) or, for a conditional GAN,
    D's real/fake logit given each class in turn (how real the image looks *as that class*); "source": the
    real/fake logit (a WGAN critic's score), K = 1; "auto": "class" where the model has one. Pixels are mapped
    to [-1, 1] (:func:`trustkit.generative.base.to_signed`), the range the discriminator was trained on.
    """

    def __init__(self, model: GenerativeModel, head: str = "auto") -> None:
        super().__init__()
        heads = discriminator_heads(model)
        if head not in HEADS:
            raise InvalidArgumentError(f"unknown discriminator head '{head}'; pick one of {', '.join(HEADS)}")
        if head == "auto":
            head = heads[0]
        if head not in heads:
            raise InvalidArgumentError(f"{type(model).__name__} has no '{head}' head; it has: {', '.join(heads)}")
        self.gan = model.eval()
        self.head = head
        self.num_outputs = model.num_classes if head == "class" else 1
        # WGAN-GP's critic takes the images only; the DCGAN family's takes (images, labels)
        self._critic_takes_labels = len(inspect.signature(model.critic).parameters) > 1

    def _critic(self, signed: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.gan.critic(signed, labels) if self._critic_takes_labels else self.gan.critic(signed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        signed = to_signed(x)
        if self.head == "source":
            return self._critic(signed, None).reshape(len(x), 1)
        if hasattr(self.gan, "classify"):
            return self.gan.classify(signed)
        scores = [self._critic(signed, torch.full((len(x),), k, dtype=torch.long, device=x.device))
                  for k in range(self.gan.num_classes)]
        return torch.stack(scores, dim=1)


def output_names(model: nn.Module, class_names: Sequence[str], num_outputs: int) -> list[str]:
    """Display names of ``model``'s ``num_outputs`` logits: "real" for a discriminator's real/fake logit, else
    the data set's ``class_names`` (an output beyond them is named by its index)."""
    if isinstance(model, DiscriminatorView) and model.head == "source":
        return ["real"]
    names = [str(c) for c in class_names]
    return [names[i] if i < len(names) else str(i) for i in range(num_outputs)]


def softmax_probability(logits: torch.Tensor, index: int) -> float:
    """The model's probability of output ``index`` for one image's logits (K): softmax over K > 1 outputs, the
    sigmoid of a single real/fake logit."""
    logits = logits.float().reshape(-1)
    if logits.numel() == 1:
        return float(torch.sigmoid(logits[0]))
    return float(torch.softmax(logits, 0)[index])


__all__ = ["HEADS", "DiscriminatorView", "discriminator_heads", "output_names", "softmax_probability"]
