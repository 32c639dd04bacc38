"""ε-curve reuse: a larger budget attacks only what the same attack left standing at the smaller ones, and the
figures equal that composition computed by hand, in any process and in any order."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch

from tests.helpers import run_cli
from trustkit.attacks.evaluate import run_attack
from trustkit.attacks.spec import AttackSpec
from trustkit.runtime import seed_everything
from trustkit.studies.bench_cells import Cell, build_cell_attack, build_context, curve_cells, evaluate_cell

CPU = torch.device("cpu")


def _cells(attack: str = "pgd", grid=(0.05, 0.1), **params) -> list[Cell]:
    spec = AttackSpec.parse(attack, "trustkit", params)
    return [Cell("cnn", "digits", spec, "linf", eps, n=300, seed=3, batch_size=64) for eps in grid]


def test_larger_budget_attacks_only_the_survivors_and_equals_the_composition(digits_cnn):
    small, large = curve_cells(_cells(), 64)
    assert small.below == () and large.below == (0.05,)
    ctx = build_context(large, CPU, None)
    found = evaluate_cell(ctx, large, CPU)  # computes the 0.05 cell first (this context has not)

    # by hand: the attack at 0.05 on everything correct, then the attack at 0.1 on what it left standing
    seed_everything(small.seed)
    first = run_attack(ctx.loaded.module, build_cell_attack(ctx, small), ctx.x, ctx.y, ctx.clean, batch_size=64,
                       device=CPU)
    standing = (ctx.clean.label == ctx.y) & (first.adversarial.label == ctx.y)
    fooled_small = int(((ctx.clean.label == ctx.y) & ~standing).sum())
    seed_everything(large.seed)
    survivors = standing.nonzero().squeeze(1)
    sub_clean = replace(ctx.clean, label=ctx.clean.label[survivors], confidence=ctx.clean.confidence[survivors])
    second = run_attack(ctx.loaded.module, build_cell_attack(ctx, large), ctx.x[survivors], ctx.y[survivors],
                        sub_clean, batch_size=64, device=CPU)
    robust_by_hand = int((second.adversarial.label == ctx.y[survivors]).sum())

    assert fooled_small > 0 and found["row"]["reused"] == fooled_small
    assert round(found["row"]["robust_accuracy"] * len(ctx.y)) == robust_by_hand
    # the smaller cell, computed on the way, is served as is when the engine reaches it
    assert round(evaluate_cell(ctx, small, CPU)["row"]["robust_accuracy"] * len(ctx.y)) == int(standing.sum())
    # a carried image keeps its smaller-budget adversarial example: its size is within the smaller ball
    carried = (ctx.clean.label == ctx.y) & ~standing
    linf = torch.tensor(found["gallery"]["linf"])
    assert len(linf) and float(linf.max()) <= 0.1 + 1e-6
    assert found["row"]["max_linf"] <= 0.1 + 1e-6 and bool(carried.any())


def test_any_process_order_gives_the_same_curve(digits_cnn):
    cells = curve_cells(_cells(grid=(0.03, 0.06, 0.1)), 64)
    in_order = build_context(cells[0], CPU, None)
    rows = [evaluate_cell(in_order, c, CPU)["row"] for c in cells]
    fresh = build_context(cells[0], CPU, None)  # another worker that only gets the largest cell
    alone = evaluate_cell(fresh, cells[2], CPU)["row"]
    drop = ("seconds",)
    assert {k: v for k, v in alone.items() if k not in drop} == {k: v for k, v in rows[2].items() if k not in drop}
    accuracy = [r["robust_accuracy"] for r in rows]
    assert accuracy == sorted(accuracy, reverse=True)  # the curve never rises
    assert [r["reused"] for r in rows][0] == 0 and rows[2]["reused"] >= rows[1]["reused"] > 0


def test_targeted_black_box_and_minimum_norm_attacks_attack_every_budget_afresh():
    for attack, params in (("pgd", {"targeted": True}), ("square", {}), ("deepfool", {})):
        cells = _cells(attack, **params)
        if params.get("targeted"):
            cells = [replace(c, targets="random") for c in cells]
        assert all(c.below == () for c in curve_cells(cells, 64)), attack
    strong = curve_cells(_cells("strong"), 64)
    assert strong[1].below == (0.05,)  # the ensemble is white-box: its curve reuses too
    assert strong[1].describe() != replace(strong[1], below=()).describe()  # and its cache key says so


def test_bench_reuses_by_default_and_independent_eps_turns_it_off(tmp_path, capsys, digits_cnn):
    frames = {}
    for flag in ((), ("--independent-eps",)):
        out = tmp_path / ("independent" if flag else "reuse")
        code, _, err = run_cli(capsys, "bench", "fgsm,pgd", "-n", "200", "--eps", "0.05,0.1,0.2", "--no-probes",
                               "--no-cache", "--out", str(out), *flag)
        assert code == 0, err
        frames[bool(flag)] = pd.read_csv(next(out.glob("*/results.csv")))
    reuse, independent = frames[False], frames[True]
    assert (independent["reused"] == 0).all()
    assert (reuse[reuse["eps"] > 0.05]["reused"] > 0).all() and (reuse[reuse["eps"] == 0.05]["reused"] == 0).all()
    for attack, rows in reuse.groupby("attack"):
        accuracy = rows.sort_values("eps")["robust_accuracy"].tolist()
        assert accuracy == sorted(accuracy, reverse=True), attack


def test_a_reusing_curve_is_one_chain_for_the_engine_and_other_cells_stay_alone():
    """processes and Ray run a reusing curve's cells as one task (else each recomputes the budgets below it);
    cells whose curve attacks every budget afresh stay separate tasks, free to run in parallel."""
    from trustkit.engine.backends import chains
    from trustkit.studies.bench import BenchStudy

    pgd = curve_cells(_cells("pgd", grid=(0.03, 0.06, 0.1)), 64)
    bim = curve_cells(_cells("bim", grid=(0.03, 0.06, 0.1)), 64)
    square = curve_cells(_cells("square", grid=(0.03, 0.06)), 64)
    study = BenchStudy(cell_list=[pgd[0], bim[0], square[0], pgd[1], bim[1], square[1], pgd[2], bim[2]], config={})
    grouped = chains(study, list(enumerate(study.cells())))
    assert [[i for i, _ in chain] for chain in grouped] == [[0, 3, 6], [1, 4, 7], [2], [5]]
    assert study.affinity(pgd[0]) == study.affinity(pgd[2]) != study.affinity(bim[0])
    assert study.affinity(square[1]) is None
    # a suite's combined study (attacks beside smoothing, corruptions...) keeps its attack curves as chains
    from trustkit.studies.combined import CombinedStudy

    combined = CombinedStudy(parts=[study, BenchStudy(cell_list=pgd, config={})], label="s", title="s", subtitle="",
                             suite_settings={})
    assert [[i for i, _ in chain] for chain in chains(combined, list(enumerate(combined.cells())))] == [
        [0, 3, 6], [1, 4, 7], [2], [5], [8, 9, 10]]
