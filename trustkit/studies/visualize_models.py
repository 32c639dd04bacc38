"""The models that ``trustkit explain maximize`` compares: ``SPEC`` or ``ROLE=SPEC`` texts, ``gan:NAME[:HEAD]``
discriminator views of the generative zoo, and the seed deck's lab trio (:func:`lab_models`). Read and checked
before any model is loaded (:mod:`trustkit.studies.visualize` runs the cells)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from trustkit.data import get_spec
from trustkit.errors import CheckpointError, InvalidArgumentError, UnknownNameError
from trustkit.blackbox.models import check_model_spec
from trustkit.explain.discriminator import HEADS, DiscriminatorView, discriminator_heads
from trustkit.fingerprint import file_fingerprint
from trustkit.models import MODELS
from trustkit.studies.base import TrainStep
from trustkit.studies.bench_cells import model_fingerprint
from trustkit.train import adversarial_entry

GAN_PREFIX = "gan:"
BUILT_IN_DATASETS = ("digits", "mnist", "cifar10", "faces", "olivetti")  # where a mismatched store entry may be from
ROLES = {"standard": "standard", "adversarial": "adversarially trained", "gan": "GAN discriminator"}
# The lab's adversarially trained model: PGD (Madry et al.) at the middle of the data set's eps grid. On 2 CPU
# cores the whole trio trains in under 2 minutes from an empty store (once; the store keeps it).
LAB_RECIPE = "pgd"
LAB_EPS = {"digits": 0.2, "mnist": 0.3, "cifar10": 8 / 255}


def lab_models(dataset: str = "digits") -> list[str]:
    """The seed deck's lab on ``dataset``: the standard zoo cnn, the same cnn adversarially trained (PGD), and
    the ACGAN discriminator's class head, each as ``ROLE=SPEC``."""
    from trustkit.train import store_name

    name = get_spec(dataset).name
    if name not in LAB_EPS:
        raise InvalidArgumentError(f"the lab trio is set up for {', '.join(LAB_EPS)}, not {name}; name the models "
                                   "yourself, e.g. --model cnn --model gan:acgan")
    robust = store_name("cnn", name, LAB_RECIPE, LAB_EPS[name])
    return [f"{ROLES['standard']}=cnn", f"{ROLES['adversarial']}={robust}", f"{ROLES['gan']}={GAN_PREFIX}acgan"]


@dataclass(frozen=True)
class ModelChoice:
    """One compared model: ``spec`` as a model loader reads it, ``role`` as given (None: inferred), and for
    ``gan:`` specs the generative ``gan`` spec and its discriminator ``head``."""

    text: str
    spec: str
    role: str | None = None
    gan: str | None = None
    head: str = "auto"

    @property
    def is_gan(self) -> bool:
        return self.gan is not None


def parse_model(text: str) -> ModelChoice:
    """``"cnn"``, ``"robust=cnn-digits-pgd-eps0.2"``, ``"gan:acgan"``, ``"gan:acgan:source"`` -> a ModelChoice."""
    raw = str(text).strip()
    role = None
    if "=" in raw:
        role, _, raw = (part.strip() for part in raw.partition("="))
        if not role or not raw:
            raise InvalidArgumentError(f"cannot read model '{text}'; write SPEC or ROLE=SPEC, e.g. "
                                       "'robust=cnn-digits-pgd-eps0.2'")
    if not raw:
        raise InvalidArgumentError("empty model spec; name a model, e.g. --model cnn")
    if not raw.lower().startswith(GAN_PREFIX):
        return ModelChoice(str(text).strip(), raw, role)
    gan, head = raw[len(GAN_PREFIX):].strip(), "auto"
    stem, _, last = gan.rpartition(":")
    if stem and last.lower() in HEADS:
        gan, head = stem, last.lower()
    if not gan:
        raise InvalidArgumentError(f"'{text}' names no generative model; write gan:NAME, e.g. gan:acgan")
    return ModelChoice(str(text).strip(), raw, role, gan, head)


def gan_family(choice: ModelChoice, dataset: str) -> type:
    """The generative class behind a ``gan:`` spec, read without loading weights (registry or header)."""
    from trustkit.generative import GENERATIVE_MODELS
    from trustkit.models.store import checkpoint_exists, read_metadata, store_path

    name = choice.gan or ""
    if name in GENERATIVE_MODELS:
        return GENERATIVE_MODELS.get(name)
    path = Path(name).expanduser()
    if name.endswith((".safetensors", ".json")) or "/" in name or os.sep in name:
        meta = read_metadata(path)
    elif checkpoint_exists(store_path(name)):
        meta = read_metadata(store_path(name))
    else:
        try:
            GENERATIVE_MODELS.canonical(name)
        except UnknownNameError as exc:
            raise UnknownNameError(f"{exc}; or give a store entry such as gen-acgan-{dataset} or a .safetensors "
                                   "checkpoint after gan:") from None
        raise AssertionError("unreachable")  # canonical() either raised or the name was registered
    if meta.get("kind") != "generative" or meta.get("arch") not in GENERATIVE_MODELS:
        raise CheckpointError(f"{name} is not a trustkit generative checkpoint; train one with 'trustkit gen train "
                              f"--model acgan --dataset {dataset}'")
    return GENERATIVE_MODELS.get(meta["arch"])


def gan_outputs(choice: ModelChoice, dataset: str) -> tuple[str, int]:
    """``(head, number of outputs)`` of a ``gan:`` spec's discriminator view, checked before any work."""
    family = gan_family(choice, dataset)
    heads = discriminator_heads(family)
    head = heads[0] if choice.head == "auto" else choice.head
    if head not in heads:
        raise InvalidArgumentError(f"{family.__name__} has no '{head}' head; it has: {', '.join(heads)} "
                                   f"(write {GAN_PREFIX}{choice.gan}:{heads[0]})")
    return head, get_spec(dataset).num_classes if head == "class" else 1


def check_models(texts: Sequence[str], dataset: str) -> tuple[list[ModelChoice], dict[str, tuple[str, int]]]:
    """The choices of ``texts`` and per choice text ``(head, number of outputs)``, checked before anything is
    trained or loaded: each model named once, ``gan:`` heads that exist, store entries trained on ``dataset``."""
    spec = get_spec(dataset)
    if not texts:
        raise InvalidArgumentError("no model given; name one or more, e.g. --model cnn --model gan:acgan")
    choices = [parse_model(text) for text in texts]
    seen: dict[str, str] = {}
    for choice in choices:
        if choice.spec in seen:
            raise InvalidArgumentError(f"model '{choice.spec}' is given twice ('{seen[choice.spec]}' and "
                                       f"'{choice.text}'); name each model once")
        seen[choice.spec] = choice.text
    outputs: dict[str, tuple[str, int]] = {}
    for choice in choices:
        if choice.is_gan:
            outputs[choice.text] = gan_outputs(choice, dataset)
            continue
        if adversarial_entry(choice.spec, dataset) is None:
            other = next((d for d in BUILT_IN_DATASETS if d != dataset and adversarial_entry(choice.spec, d)), None)
            if other is not None and not os.path.exists(choice.spec):
                raise InvalidArgumentError(f"model '{choice.spec}' is trained on {other}, not {dataset}; pass "
                                           f"--dataset {other} or a model trained on {dataset}")
            check_model_spec(choice.spec)
        outputs[choice.text] = ("logits", spec.num_classes)
    return choices, outputs


def load_classifier(choice: ModelChoice, dataset: str, trust_code: bool,
                device: torch.device) -> tuple[nn.Module, str, str, str | None, dict[str, Any]]:
    """``(module, display name, role, fingerprint, info)`` of a classifier choice, loaded on ``device``."""
    from trustkit.models.loading import resolve_model

    loaded = resolve_model(choice.spec, dataset, device=device, trust_code=trust_code)
    recipe = loaded.metadata.get("recipe") if isinstance(loaded.metadata.get("recipe"), dict) else {}
    trained = recipe.get("recipe", "clean")
    role = choice.role or (ROLES["adversarial"] if trained != "clean" else ROLES["standard"])
    info = {"spec": choice.spec, "source": loaded.source, "recipe": trained,
            "eps": recipe.get("eps") if trained != "clean" else None}
    return loaded.module, loaded.name, role, model_fingerprint(loaded), info

def load_gan(choice: ModelChoice, dataset: str, head: str,
         device: torch.device) -> tuple[nn.Module, str, str, str | None, dict[str, Any]]:
    """The same for a ``gan:`` choice: its discriminator's ``head`` as a module of [0, 1] images."""
    from trustkit.generative.store import resolve_generator

    loaded = resolve_generator(choice.gan or "", dataset, device)
    view = DiscriminatorView(loaded.model, head)
    what = "class head" if head == "class" else "real/fake logit"
    name = f"{loaded.arch} discriminator ({what})"
    info = {"spec": choice.spec, "source": loaded.source, "recipe": loaded.metadata.get("family", "gan"),
            "eps": None}
    fingerprint = f"file:{file_fingerprint(loaded.source)}" if os.path.isfile(loaded.source) else None
    return view, name, choice.role or ROLES["gan"], fingerprint, info


def train_steps(choices: Sequence[ModelChoice], dataset: str, data_root: str | None,
                download: bool) -> list[TrainStep]:
    """What the engine trains before the cells run: zoo classifiers, zoo generators behind ``gan:`` specs and
    adversarially trained store entries (``cnn-digits-pgd-eps0.2``, trained as ``trustkit train --adv pgd --eps
    0.2`` would)."""
    from trustkit.generative import GENERATIVE_MODELS

    steps = []
    for choice in choices:
        if choice.is_gan:
            if choice.gan in GENERATIVE_MODELS:
                steps.append(TrainStep(GENERATIVE_MODELS.canonical(choice.gan), dataset, data_root, download,
                                       kind="generator"))
        elif choice.spec in MODELS:
            steps.append(TrainStep(choice.spec, dataset, data_root, download))
        elif (parsed := adversarial_entry(choice.spec, get_spec(dataset).name)) is not None:
            arch, recipe, eps = parsed
            steps.append(TrainStep(arch, dataset, data_root, download, recipe=recipe, eps=eps))
    return steps


__all__ = ["BUILT_IN_DATASETS", "GAN_PREFIX", "LAB_EPS", "LAB_RECIPE", "ROLES", "ModelChoice", "check_models",
           "gan_family", "gan_outputs", "lab_models", "load_classifier", "load_gan", "parse_model",
           "train_steps"]
