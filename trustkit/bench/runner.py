"""Run bench cells: group them by model, reuse cached cells, evaluate the rest serially or in processes."""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

import torch

from trustkit.bench.cells import Cell, CellCache, CellResult, cell_key, model_fingerprint
from trustkit.bench.evaluate import (Predictions, choose_targets, clean_predictions, per_class_robust_accuracy,
                                     run_attack, summarize)
from trustkit.data import DatasetSpec, get_spec, load_dataset
from trustkit.fingerprint import cache_key, tensor_fingerprint
from trustkit.models.loading import LoadedModel, resolve_model
from trustkit.report.gallery import render_gallery
from trustkit.attacks import Attack
from trustkit.runtime import ProgressTask, progress, seed_everything, select_device
from trustkit.sanity import Check, probe_model

GALLERY_SIZE = 8


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


def subset(n_total: int, n: int | None, default_n: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded random subset of the test split (``n`` or the data set's default)."""
    count = min(n or default_n, n_total)
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:count].sort().values


def build_context(cell: Cell, device: torch.device, data_root: str | None, download: bool = False,
                  model: Any = None, trust_code: bool = False) -> GroupContext:
    """Load (training if needed) the group's model and its sample subset; ``model`` overrides the spec;
    ``trust_code`` allows models that are programs (TorchScript, factories)."""
    spec = get_spec(cell.dataset)
    loaded = resolve_model(model if model is not None else cell.model, spec.name, data_root=data_root, device=device,
                           download=download, trust_code=trust_code)
    test_set = load_dataset(spec.name, "test", data_root, download)
    x, y = test_set.tensors(subset(len(test_set), cell.n, spec.default_n, cell.seed))
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


def evaluate_cell(ctx: GroupContext, cell: Cell, device: torch.device, bar: ProgressTask | None = None) -> CellResult:
    """Run one cell on a prepared group context."""
    seed_everything(cell.seed)
    attack = build_cell_attack(ctx, cell)
    targets = (choose_targets(cell.targets, ctx.clean, ctx.y, ctx.spec.num_classes, cell.seed)
               if attack.targeted else None)
    search_key = f"{cell.attack.describe()}|{cell.norm}|{cell.evaluation}"
    outcome = run_attack(ctx.loaded.module, attack, ctx.x, ctx.y, ctx.clean, batch_size=cell.batch_size,
                         device=device, gallery_index=ctx.gallery_index, bar=bar,
                         unbounded=ctx.unbounded.setdefault(search_key, {}), attack_model=attacker_view(ctx, cell),
                         targets=targets)
    row = {"suite": cell.suite, "model": ctx.loaded.name, "dataset": ctx.spec.name, "defense": cell.defense,
           "evaluation": evaluation_label(ctx, cell), "attack": attack.name if cell.attack.engine == "trustkit"
           else cell.attack.name, "engine": cell.attack.engine, "norm": cell.norm, "eps": cell.eps,
           "seed": cell.seed, "queries": float("nan"), "targets": cell.targets if attack.targeted else "",
           "attack_params": describe_params(attack), **summarize(outcome, ctx.y, ctx.clean)}
    per_class = [{"class_name": ctx.spec.class_names[r["class_index"]], **r}
                 for r in per_class_robust_accuracy(outcome, ctx.y, ctx.clean, ctx.spec.num_classes)]
    gallery = render_gallery(ctx.x, ctx.y, ctx.clean, outcome, ctx.gallery_index, ctx.spec.class_names)
    return CellResult(cell, row, per_class, gallery, attack.params())


def describe_params(attack: Attack) -> str:
    """An attack's resolved parameters, eps and norm aside, as compact JSON (a results.csv column)."""
    params = {k: v for k, v in attack.params().items() if k not in ("eps", "norm")}
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


class _Scaled:
    """Progress in cells: an attack advancing by samples moves the bar by samples / n."""

    def __init__(self, bar: ProgressTask, n: int) -> None:
        self.bar, self.n = bar, max(n, 1)

    def advance(self, amount: float = 1) -> None:
        self.bar.advance(amount / self.n)

    def note(self, text: str) -> None:
        self.bar.note(text)


@dataclass
class RunOutput:
    """Everything a run produced, in cell order, plus per-group model probes and metadata."""

    results: list[CellResult]
    probes: dict[tuple, list[Check]]
    models: dict[tuple, dict[str, Any]]
    class_names: dict[str, tuple[str, ...]]
    computed: int = 0


def _probe(ctx: GroupContext, cell: Cell, device: torch.device, cache: CellCache) -> list[Check]:
    key = None if ctx.fingerprint is None else cache_key(
        {"probes": cell.describe() | {"attack": None, "eps": None, "norm": None, "targets": None},
         "model": ctx.fingerprint, "data": ctx.data_fingerprint, "device": device.type})
    stored = cache.load(key)
    if stored is not None:
        return [Check(**{k: v for k, v in c.items() if k != "docs"}) for c in stored["checks"]]
    seed_everything(cell.seed)
    adaptive = None if ctx.defense is None else attacker_view(ctx, replace(cell, evaluation="adaptive"))
    checks = probe_model(ctx.loaded.module, ctx.x, ctx.y, device, gradient_model=adaptive)
    cache.store(key, {"checks": [c.to_dict() for c in checks]})
    return checks


def _model_info(ctx: GroupContext) -> dict[str, Any]:
    meta = {k: v for k, v in ctx.loaded.metadata.items() if k != "history"}
    return {"name": ctx.loaded.name, "source": ctx.loaded.source, "metadata": meta,
            "parameters": sum(p.numel() for p in ctx.loaded.module.parameters()), "n": len(ctx.y),
            "clean_accuracy": (ctx.clean.label == ctx.y).float().mean().item()}


# --- worker processes (--jobs) ---------------------------------------------------------------------------
_WORKER_CONTEXTS: dict[tuple, GroupContext] = {}


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)
    from trustkit.runtime import set_quiet

    set_quiet(True)


def _worker_run(cell: Cell, device: str, data_root: str | None, key: str | None, cache_root: str,
                cache_enabled: bool, trust_code: bool = False) -> dict[str, Any]:
    torch_device = select_device(device)
    if cell.group not in _WORKER_CONTEXTS:
        _WORKER_CONTEXTS[cell.group] = build_context(cell, torch_device, data_root, trust_code=trust_code)
    result = evaluate_cell(_WORKER_CONTEXTS[cell.group], cell, torch_device)
    data = result.to_json()
    CellCache(cache_root, cache_enabled).store(key, data)
    return data


def run_cells(cells: list[Cell], *, device: str = "auto", data_root: str | None = None, download: bool = False,
              jobs: int = 1, cache: CellCache | None = None, probes: bool = True, description: str = "bench",
              model: Any = None, trust_code: bool = False) -> RunOutput:
    """Evaluate ``cells`` (skipping cached ones), run the model probes once per group; results in cell order.

    ``jobs`` > 1 evaluates uncached cells in that many processes (each with cores/jobs torch threads);
    models are trained, if needed, in this process first. ``model`` (an ``nn.Module``) replaces every cell's
    model spec and disables caching (its weights have no fingerprint).
    """
    cache = cache or CellCache()
    torch_device = select_device(device)
    groups: dict[tuple, list[int]] = {}
    for index, cell in enumerate(cells):
        groups.setdefault(cell.group, []).append(index)
    results: list[CellResult | None] = [None] * len(cells)
    contexts: dict[tuple, GroupContext] = {}
    keys: dict[int, str | None] = {}
    out = RunOutput([], {}, {}, {})
    pending: list[int] = []
    with progress(description, len(cells)) as bar:
        for group, members in groups.items():
            ctx = build_context(cells[members[0]], torch_device, data_root, download, model, trust_code)
            contexts[group] = ctx
            out.models[group] = _model_info(ctx)
            out.class_names[ctx.spec.name] = ctx.spec.class_names
            for index in members:
                keys[index] = None if ctx.fingerprint is None else cell_key(
                    cells[index], ctx.fingerprint, ctx.data_fingerprint,
                    build_cell_attack(ctx, cells[index]).params(), torch_device.type)
                stored = cache.load(keys[index])
                if stored is not None:
                    results[index] = CellResult.from_json(stored, cells[index])
                    bar.advance(1)
                elif jobs <= 1 or ctx.fingerprint is None:  # a worker cannot rebuild an in-memory model
                    bar.note(cells[index].title())
                    result = evaluate_cell(ctx, cells[index], torch_device, _Scaled(bar, len(ctx.y)))
                    cache.store(keys[index], result.to_json())
                    results[index] = result
                    out.computed += 1
                else:
                    pending.append(index)
            if probes:
                bar.note(f"sanity probes on {ctx.loaded.name}")
                out.probes[group] = _probe(ctx, cells[members[0]], torch_device, cache)
        if pending:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            import multiprocessing

            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_worker_init, initargs=(threads,)) as pool:
                futures = {pool.submit(_worker_run, cells[i], str(torch_device), data_root, keys[i],
                                       str(cache.root), cache.enabled, trust_code): i for i in pending}
                for future in as_completed(futures):
                    index = futures[future]
                    data = future.result()
                    results[index] = CellResult.from_json(data, cells[index])
                    results[index].cached = False
                    out.computed += 1
                    bar.advance(1)
                    bar.note(cells[index].title())
    out.results = [r for r in results if r is not None]
    return out


def iterate_groups(results: Iterable[CellResult]) -> dict[tuple, list[CellResult]]:
    grouped: dict[tuple, list[CellResult]] = {}
    for result in results:
        grouped.setdefault(result.cell.group, []).append(result)
    return grouped
