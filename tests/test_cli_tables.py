"""The terminal results tables: every column that tells rows apart is shown, constant ones are not."""
from __future__ import annotations

import pandas as pd

from tests.helpers import run_cli


def _frame(rows: list[dict]) -> pd.DataFrame:
    base = {"suite": "", "model": "cnn", "dataset": "digits", "defense": "none", "evaluation": "standard",
            "attack": "fgsm", "engine": "trustkit", "targets": "", "norm": "linf", "eps": 0.1, "n": 60,
            "clean_accuracy": 0.98, "robust_accuracy": 0.5, "success_rate": 0.49, "seconds": 0.1}
    return pd.DataFrame([{**base, **row} for row in rows])


def _rows(table) -> list[tuple[str, ...]]:
    columns = [list(column.cells) for column in table.columns]
    return [tuple(str(cell) for cell in row) for row in zip(*columns)]


def _headers(table) -> list[str]:
    return [str(column.header) for column in table.columns]


def _bench_table(frame: pd.DataFrame):
    from trustkit.cli.bench import results_table
    from trustkit.cli.tables import build_table

    options = results_table(frame)
    options.pop("title_keys")
    return build_table(frame, **options)


def test_defended_bench_rows_are_told_apart_by_defense_and_evaluation():
    """`trustkit bench pgd,apgd-ce --defense jpeg,noise`: eight rows, which used to read as duplicated pairs."""
    frame = _frame([{"defense": defense, "evaluation": evaluation, "attack": attack}
                    for defense, adaptive in (("jpeg:quality=75", "adaptive (bpda)"),
                                              ("noise:sigma=0.1", "adaptive (eot)"))
                    for evaluation in ("naive", adaptive) for attack in ("pgd", "apgd-ce")])
    table = _bench_table(frame)
    rows = _rows(table)
    assert len(rows) == 8 and len(set(rows)) == 8, rows
    headers = _headers(table)
    assert {"defense", "evaluation", "attack"} <= set(headers)
    assert not {"model", "dataset", "engine", "norm", "eps", "targets"} & set(headers)  # the same in every row
    assert headers[-4:] == ["clean", "robust", "success", "seconds"]


def test_constant_columns_are_left_out_and_named_once():
    from trustkit.cli.bench import results_table
    from trustkit.cli.tables import constants

    frame = _frame([{"attack": attack, "eps": eps} for attack in ("fgsm", "pgd") for eps in (0.1, 0.2)])
    table = _bench_table(frame)
    assert _headers(table) == ["attack", "eps", "clean", "robust", "success", "seconds"]
    assert len(set(_rows(table))) == 4
    options = results_table(frame)
    assert options["title"] == "cnn on digits (60 images)"
    line = constants(frame, options["keys"], title_keys=options["title_keys"])
    assert line == "defense none, evaluation standard, engine trustkit, norm linf"  # blank targets: not named


def test_several_models_show_the_model_column():
    frame = _frame([{"model": model, "attack": attack} for model in ("cnn", "mlp") for attack in ("fgsm", "pgd")])
    table = _bench_table(frame)
    assert _headers(table)[:2] == ["model", "attack"] and len(set(_rows(table))) == 4


def test_bench_with_a_defense_prints_naive_and_adaptive_rows(tmp_path, capsys, digits_cnn):
    code, out, err = run_cli(capsys, "bench", "fgsm", "--defense", "jpeg", "-n", "20", "--eps", "0.1", "--no-probes",
                             "--out", str(tmp_path))
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert len(rows) == 2 and len(set(rows)) == 2, out
    assert any("naive" in row for row in rows) and any("adaptive" in row for row in rows), out
    assert "evaluation" in out and "every row: defense jpeg" in out


def test_ray_address_needs_the_ray_backend(tmp_path, capsys):
    code, out, err = run_cli(capsys, "bench", "fgsm", "--ray-address", "auto", "--out", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "--backend ray" in err, err
    assert not any(tmp_path.iterdir())
