"""What one bench cell is and computes: one attack at one (norm, eps) on one (model, data set, defense) group.

Cells of a group share a :class:`GroupContext` — the loaded model, the seeded test sample, its clean
predictions — and each cell reseeds itself, so its numbers depend on its inputs only, never on the order or
the process (or machine) that computes it. Its cache key (:func:`cell_key`) holds everything that decides
them: the cell, the bytes of the model that was loaded (a factory's state dict after building), the exact test
tensors, every resolved attack parameter (defaults included), the device type, trustkit's source code and the
library versions (:mod:`trustkit.fingerprint`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import torch

from trustkit.attacks import Attack, format_eps
from trustkit.attacks.evaluate import (Predictions, Settled, choose_targets, clean_predictions,
                                       per_class_robust_accuracy, reuses_smaller_budgets, run_attack, summarize)
from trustkit.attacks.precision import attack_precision
from trustkit.attacks.spec import AttackSpec
from trustkit.data import DatasetSpec, get_spec, load_dataset
from trustkit.fingerprint import cache_key, file_fingerprint, state_dict_fingerprint, tensor_fingerprint
from trustkit.images import pack_images
from trustkit.models.inference import predict_labels
from trustkit.models.loading import LoadedModel, resolve_model
from trustkit.runtime import seed_everything
from trustkit.sanity import probe_model
from trustkit.studies.base import Progress

GALLERY_SIZE = 8


@dataclass(frozen=True)
class Cell:
    """One evaluation: ``attack`` at (``norm``, ``eps``) on ``n`` seeded test images of ``dataset``."""

    model: str
    dataset: str
    attack: AttackSpec
    norm: str
    eps: float
    n: int | None = None
    seed: int = 0
    batch_size: int = 256
    defense: str = "none"
    suite: str = ""
    evaluation: str = "standard"  # "standard" (no defense), "naive" or "adaptive" (see trustkit.defenses)
    targets: str = ""  # targeted attacks: how target labels are drawn ("random", "least-likely"); "" untargeted
    precision: str = "fp32"  # gradients of attack iterations (trustkit.attacks.precision); verdicts always fp32
    below: tuple[float, ...] = ()  # ε-curve reuse: this attack's smaller budgets of the grid (ascending), whose
    # fooled samples count as fooled here without being attacked again (see trustkit.attacks.evaluate.Settled)

    @property
    def group(self) -> tuple[str, str, str, int | None, int, int]:
        """Cells of one group share a loaded model, data subset, clean predictions and probes."""
        return (self.model, self.dataset, self.defense, self.n, self.seed, self.batch_size)

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "defense": self.defense, "evaluation": self.evaluation,
                "attack": self.attack.describe(), "norm": self.norm, "eps": self.eps, "n": self.n,
                "seed": self.seed, "batch_size": self.batch_size, "targets": self.targets,
                **({"precision": self.precision} if self.precision != "fp32" else {}),
                **({"reuses_eps": list(self.below)} if self.below else {})}

    def title(self) -> str:
        defense = "" if self.defense == "none" else f" + {self.defense} ({self.evaluation})"
        return f"{self.attack.label} {self.norm} eps {format_eps(self.eps)} on {self.model}/{self.dataset}{defense}"


def defense_cells(defenses: list[str]) -> list[tuple[str, str]]:
    """``(defense description, evaluation)`` pairs: "none" is evaluated as is, every defense naive and adaptive."""
    from trustkit.defenses import make_defense

    pairs = []
    for name in defenses or ["none"]:
        if name == "none":
            pairs.append(("none", "standard"))
        else:
            described = make_defense(name).describe()
            pairs += [(described, "naive"), (described, "adaptive")]
    return list(dict.fromkeys(pairs))


def cell_key(cell: Cell, model_fingerprint: str, data_fingerprint: str, attack_params: dict[str, Any],
             device_type: str, compiled: bool = False) -> str:
    """Everything that decides a cell's numbers: the cell, the model's bytes, the exact test tensors, every
    resolved attack parameter (defaults included), the device type (and whether torch.compile may run the model:
    fused kernels round differently), trustkit's code and library versions."""
    return cache_key({"cell": cell.describe(), "model": model_fingerprint, "data": data_fingerprint,
                      "attack_params": attack_params, "device": device_type, **({"compile": True} if compiled else {})})


def model_fingerprint(loaded: LoadedModel) -> str | None:
    """What identifies a loaded model's computation: the hash of the file it was read from (checkpoint,
    TorchScript), or for a factory the hash of the state dict it built; None for a Python object."""
    if os.path.isfile(loaded.source):
        return f"file:{file_fingerprint(loaded.source)}"
    if loaded.metadata.get("format") in ("factory", "library"):
        return f"factory:{loaded.source}:{state_dict_fingerprint(loaded.module)}"
    return None


@dataclass
class GroupContext:
    """What every cell of one group shares: the model, the seeded sample subset and clean predictions."""

    loaded: LoadedModel
    spec: DatasetSpec
    x: torch.Tensor
    y: torch.Tensor
    clean: Predictions
    gallery_index: torch.Tensor
    fingerprint: str | None
    data_fingerprint: str = ""
    randomized: bool = False  # the model's output varies between identical calls (strong becomes strong-rand)
    base: torch.nn.Module | None = None  # the undefended model when the group has a defense
    defense: Any = None
    unbounded: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)  # minimum-norm search results
    min_norms: dict[str, list[float | None]] = field(default_factory=dict)  # their per-image sizes, once per search
    settled: dict[Cell, Settled] = field(default_factory=dict)  # ε-curve reuse: per-sample results of each cell
    finished: dict[Cell, dict[str, Any]] = field(default_factory=dict)  # cells computed early for a curve
    compile_info: dict[str, Any] | None = None  # --compile: what trustkit.models.compiled decided for this group

    def to(self, device: torch.device) -> "GroupContext":
        """This context with its models on ``device`` (tensors stay on the CPU; attacks move batches)."""
        module = getattr(self.loaded.module, "_orig_mod", self.loaded.module).to(device)  # compiled: the eager one
        base = self.base.to(device) if self.base is not None else None
        return replace(self, loaded=replace(self.loaded, module=module), base=base, unbounded={}, min_norms={},
                       settled={}, finished={}, compile_info=None)


def build_context(cell: Cell, device: torch.device, data_root: str | None, download: bool = False,
                  model: Any = None, trust_code: bool = False) -> GroupContext:
    """Load the group's model (trained already: the engine's prerequisites) and its sample subset; ``model``
    overrides the spec; ``trust_code`` allows models that are programs (TorchScript, factories)."""
    spec = get_spec(cell.dataset)
    loaded = resolve_model(model if model is not None else cell.model, spec.name, data_root=data_root, device=device,
                           download=download, trust_code=trust_code)
    test_set = load_dataset(spec.name, "test", data_root, download)
    x, y = test_set.tensors(test_set.sample(cell.n, spec.default_n, cell.seed))
    base, defense = None, None
    if cell.defense != "none":
        from trustkit.defenses import DefendedModel, make_defense

        base, defense = loaded.module, make_defense(cell.defense)
        loaded = LoadedModel(DefendedModel(base, defense).eval(), loaded.name, loaded.source, loaded.metadata)
    seed_everything(cell.seed)  # randomised defenses: clean predictions are reproducible too
    clean = clean_predictions(loaded.module, x, batch_size=cell.batch_size, device=device)
    gallery_index = (clean.label == y).nonzero().squeeze(1)[:GALLERY_SIZE]
    fingerprint = model_fingerprint(loaded) if model is None else None
    randomized = defense is None and is_randomized(loaded.module, x, device)
    return GroupContext(loaded, spec, x, y, clean, gallery_index, fingerprint, tensor_fingerprint(x, y), randomized,
                        base, defense)


def compile_group(ctx: GroupContext, batch_size: int, device: torch.device) -> None:
    """``--compile``: replace the group's model by its torch.compile'd version when that is measured faster on a
    batch of the group's own images (:func:`trustkit.models.compiled.compile_if_faster`), and record why."""
    from trustkit.models.compiled import compile_if_faster
    from trustkit.runtime import log

    batch = slice(0, min(batch_size, len(ctx.y)))
    module, ctx.compile_info = compile_if_faster(ctx.loaded.module, ctx.x[batch].to(device), ctx.y[batch].to(device))
    ctx.loaded = replace(ctx.loaded, module=module)
    log(f"--compile on {ctx.loaded.name}: {ctx.compile_info['reason']}")


def is_randomized(model: torch.nn.Module, x: torch.Tensor, device: torch.device, samples: int = 16) -> bool:
    """AutoAttack's check: two forward passes over the same images disagree (dropout at test time, random
    input transforms). Such a model needs EOT, so ``strong`` runs as ``strong-rand``."""
    batch = x[:samples].to(device)
    with torch.no_grad():
        return not torch.equal(model(batch), model(batch))


def attacker_view(ctx: GroupContext, cell: Cell) -> torch.nn.Module:
    """The model the attacker differentiates: the deployed one, the undefended one (naive) or the BPDA/EOT
    view of the defended one (adaptive)."""
    if cell.evaluation == "naive":
        return ctx.base
    if cell.evaluation == "adaptive":
        from trustkit.defenses import AdaptiveView

        return AdaptiveView(ctx.base, ctx.defense).eval()
    return ctx.loaded.module


def _transfer_like(ctx: GroupContext, cell: Cell) -> bool:
    """True when the model attacked differs from the model judged: naive defense evaluation, or EOT."""
    return cell.evaluation == "naive" or (cell.evaluation == "adaptive" and ctx.defense.randomized)


def evaluation_label(ctx: GroupContext, cell: Cell) -> str:
    if cell.evaluation == "adaptive":
        return f"adaptive ({ctx.defense.adaptive_method})"
    return cell.evaluation


def build_cell_attack(ctx: GroupContext, cell: Cell) -> Attack:
    """The attack a cell runs, as configured for this group's model.

    When the attacker's model is not the one judged (naive defense rows, EOT), stopping at the first point that
    fools the attacker's model would hand over points that barely cross *its* boundary: every attack then runs
    its whole budget (``early_stop=False``). On a randomised model ``strong`` runs as ``strong-rand``.
    """
    spec = cell.attack
    if spec.name == "strong" and spec.engine == "trustkit" and ctx.randomized:
        spec = replace(spec, name="strong-rand")
    params = dict(spec.params)
    if _transfer_like(ctx, cell) and spec.engine == "trustkit" and not spec.is_art_class:
        params["early_stop"] = False
    return replace(spec, params=params).build(cell.eps, cell.norm, cell.batch_size)


def describe_params(attack: Attack) -> str:
    """An attack's resolved parameters, eps and norm aside, as compact JSON (a results.csv column)."""
    params = {k: v for k, v in attack.params().items() if k not in ("eps", "norm")}
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


class _SamplesBar:
    """An attack advances by samples; the engine's cell bar takes fractions of the cell."""

    def __init__(self, bar: Progress, n: int) -> None:
        self.bar, self.n = bar, max(n, 1)

    def advance(self, amount: float = 1) -> None:
        self.bar.advance(amount / self.n)

    def note(self, text: str) -> None:
        self.bar.note(text)


def curve(cell: Cell) -> tuple:
    """The ε-curve ``cell`` belongs to: same model, data, defense, evaluation, attack, norm, targets, precision."""
    return (cell.group, cell.evaluation, cell.attack, cell.norm, cell.targets, cell.precision, cell.suite)


def reusing_curves(cells: Sequence[Cell]) -> set[tuple]:
    """The curves whose larger budgets build on their smaller ones (some cell has ``below``): their cells must
    run one after another in one process, or each would compute its smaller budgets again."""
    return {curve(c) for c in cells if c.below}


def curve_cells(cells: list[Cell], batch_size: int) -> list[Cell]:
    """``cells`` with ``below`` set: each eligible cell lists the smaller budgets of its own ε-curve (same model,
    data, defense, evaluation, attack, norm, targets and precision)."""
    grids: dict[tuple, list[float]] = {}
    for cell in cells:
        grids.setdefault(curve(cell), []).append(cell.eps)
    eligible: dict[tuple, bool] = {}
    out = []
    for cell in cells:
        key = (cell.attack, cell.norm, cell.targets)
        if key not in eligible:  # see reuses_smaller_budgets
            eligible[key] = not cell.targets and reuses_smaller_budgets(cell.attack.build(cell.eps, cell.norm,
                                                                                           batch_size))
        smaller = tuple(sorted(e for e in set(grids[curve(cell)]) if e < cell.eps))
        out.append(replace(cell, below=smaller) if eligible[key] and smaller else cell)
    return out


def _settled_below(ctx: GroupContext, cell: Cell, device: torch.device) -> Settled | None:
    """The results of ``cell``'s attack at the largest smaller budget of its curve, computing that cell (and,
    recursively, its own smaller ones) when this process has not: every process gets the same numbers."""
    if not cell.below or ctx.randomized or (ctx.defense is not None and ctx.defense.randomized):
        return None  # a randomised model's verdict on the same point can change: no reuse
    smaller = replace(cell, eps=cell.below[-1], below=cell.below[:-1])
    if smaller not in ctx.settled:
        ctx.finished[smaller] = evaluate_cell(ctx, smaller, device)  # served when the engine reaches that cell
    return ctx.settled[smaller]


def evaluate_cell(ctx: GroupContext, cell: Cell, device: torch.device, bar: Progress | None = None) -> dict[str, Any]:
    """Run one cell on a prepared group: its result row, per-class rows, gallery images and attack parameters."""
    if cell in ctx.finished:  # computed already as the smaller budget of another cell's ε-curve
        return ctx.finished.pop(cell)
    settled = _settled_below(ctx, cell, device)
    seed_everything(cell.seed)
    attack = build_cell_attack(ctx, cell)
    targets = (choose_targets(cell.targets, ctx.clean, ctx.y, ctx.spec.num_classes, cell.seed)
               if attack.targeted else None)
    search_key = f"{cell.attack.describe()}|{cell.norm}|{cell.evaluation}|{cell.precision}"
    with attack_precision(cell.precision, device):
        outcome = run_attack(ctx.loaded.module, attack, ctx.x, ctx.y, ctx.clean, batch_size=cell.batch_size,
                             device=device, gallery_index=ctx.gallery_index,
                             bar=_SamplesBar(bar, len(ctx.y)) if bar is not None else None,
                             unbounded=ctx.unbounded.setdefault(search_key, {}),
                             attack_model=attacker_view(ctx, cell), targets=targets, settled=settled)
    if reuses_smaller_budgets(attack):  # a larger budget of its curve may build on it
        ctx.settled[cell] = Settled.from_outcome(outcome, ctx.y, ctx.gallery_index)
    row = {"suite": cell.suite, "model": ctx.loaded.name, "dataset": ctx.spec.name, "defense": cell.defense,
           "evaluation": evaluation_label(ctx, cell), "attack": attack.name if cell.attack.engine == "trustkit"
           else cell.attack.name, "engine": cell.attack.engine, "norm": cell.norm, "eps": cell.eps,
           "seed": cell.seed, "queries": float("nan"), "targets": cell.targets if attack.targeted else "",
           "precision": cell.precision, "reused": outcome.reused,
           "attack_params": describe_params(attack), **summarize(outcome, ctx.y, ctx.clean)}
    per_class = [{"class_name": ctx.spec.class_names[r["class_index"]], **r}
                 for r in per_class_robust_accuracy(outcome, ctx.y, ctx.clean, ctx.spec.num_classes)]
    index = ctx.gallery_index
    gallery = {"x": pack_images(ctx.x[index]), "x_adv": pack_images(outcome.gallery_x_adv),
               "true": ctx.y[index].tolist(), "clean_label": ctx.clean.label[index].tolist(),
               "clean_confidence": ctx.clean.confidence[index].tolist(),
               "adv_label": outcome.adversarial.label[index].tolist(),
               "adv_confidence": outcome.adversarial.confidence[index].tolist(),
               "linf": outcome.linf[index].tolist(), "l2": outcome.l2[index].tolist()}
    found = {"row": row, "per_class": per_class, "gallery": gallery, "attack_params": attack.params()}
    if attack.minimum_norm and ctx.unbounded.get(search_key):
        if search_key not in ctx.min_norms:  # every ε cell of the search shares it: measured once
            ctx.min_norms[search_key] = minimal_norms(ctx, cell, ctx.unbounded[search_key], device)
        found["min_norms"] = ctx.min_norms[search_key]
    return found


@torch.no_grad()
def minimal_norms(ctx: GroupContext, cell: Cell, unbounded: dict[int, torch.Tensor],
                  device: torch.device) -> list[float | None]:
    """Per test image, the size (in the cell's norm, [0, 1] pixel units) of the smallest adversarial example the
    minimum-norm search found: 0 for an image the model already gets wrong, None where the search found none.
    ``unbounded`` is the search's per-batch cache (keyed by the batch's offset among the attacked images), so
    the whole ε-curve of the attack comes from this one search."""
    rows = (ctx.clean.label == ctx.y).nonzero().squeeze(1)
    norms: list[float | None] = [0.0] * len(ctx.y)
    for start, found in unbounded.items():
        index = rows[start:start + len(found)]
        x = ctx.x[index]
        delta = (found - x).flatten(1)
        size = delta.abs().amax(1) if cell.norm == "linf" else delta.norm(dim=1)
        fooled = predict_labels(ctx.loaded.module, found, batch_size=cell.batch_size, device=device) != ctx.y[index]
        for i, value, hit in zip(index.tolist(), size.tolist(), fooled.tolist()):
            norms[i] = round(value, 7) if hit else None
    return norms


def probe_checks(ctx: GroupContext, cell: Cell, device: torch.device) -> list[dict[str, Any]]:
    """The model sanity probes of a group (as dicts): unbounded attack, gradients, outputs."""
    seed_everything(cell.seed)
    adaptive = None if ctx.defense is None else attacker_view(ctx, replace(cell, evaluation="adaptive"))
    return [c.to_dict() for c in probe_model(ctx.loaded.module, ctx.x, ctx.y, device, gradient_model=adaptive)]


def probe_key(ctx: GroupContext, cell: Cell, device_type: str) -> str | None:
    if ctx.fingerprint is None:
        return None
    return cache_key({"probes": cell.describe() | {"attack": None, "eps": None, "norm": None, "targets": None},
                      "model": ctx.fingerprint, "data": ctx.data_fingerprint, "device": device_type})


def model_info(ctx: GroupContext) -> dict[str, Any]:
    """The group's model as the report shows it: name, source, metadata, size, sample and clean accuracy."""
    meta = {k: v for k, v in ctx.loaded.metadata.items() if k != "history"}
    return {"name": ctx.loaded.name, "source": ctx.loaded.source, "metadata": meta,
            "parameters": sum(p.numel() for p in ctx.loaded.module.parameters()), "n": len(ctx.y),
            "clean_accuracy": (ctx.clean.label == ctx.y).float().mean().item(),
            "class_names": list(ctx.spec.class_names)}
