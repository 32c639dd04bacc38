"""Transfer attacks: the diagonal is the white-box attack, ensembles work, the report and CLI hold together,
and bad input ends in one line."""
import json

import pandas as pd
import pytest
import torch

from tests.helpers import HtmlCollector, run_cli
from trustkit import load_dataset
from trustkit.attacks import FGSM, PGD
from trustkit.data.base import subset
from trustkit.blackbox.transfer import (
    WHITE_BOX_ROW,
    TransferConfig,
    beats_white_box,
    transfer_checks,
)
from trustkit.engine import run_transfer
from trustkit.runtime import seed_everything

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def transfer_run(tmp_path_factory, digits_cnn, digits_softmax):
    out = tmp_path_factory.mktemp("transfer")
    return run_transfer(TransferConfig(sources=["cnn", "softmax", "cnn+softmax"], targets=["cnn", "softmax"], n=120,
                                       eps=[0.1, 0.2], attack_params={"steps": 5}, out=str(out)))


def _white_box_success(model, attack, x, y):
    with torch.no_grad():
        correct = model(x).argmax(1) == y
        seed_everything(0)
        fooled = model(attack(model, x, y)).argmax(1) != y
    return (correct & fooled).sum().item() / correct.sum().item()


def test_diagonal_equals_the_white_box_attack(transfer_run, digits_cnn, digits_softmax):
    x, y = load_dataset("digits", "test").tensors(subset(360, 120, 360, 0))
    results = transfer_run.results
    for name, model in (("cnn", digits_cnn), ("softmax", digits_softmax)):
        for attack_name, eps, attack in (("fgsm", 0.2, FGSM(0.2)),
                                         ("pgd", 0.1, PGD(0.1, steps=5))):
            row = results[(results["source"] == name) & (results["target"] == name)
                          & (results["attack"] == attack_name) & (results["eps"] == eps)]
            assert len(row) == 1 and bool(row["white_box"].iloc[0])
            assert row["success_rate"].iloc[0] == pytest.approx(_white_box_success(model, attack, x, y), abs=1e-6)


def test_matrix_rows_columns_and_ensemble(transfer_run):
    matrix = transfer_run.matrix("pgd", 0.2)
    assert list(matrix.index) == ["cnn", "softmax", "cnn+softmax", WHITE_BOX_ROW]
    assert list(matrix.columns) == ["cnn", "softmax"]
    assert matrix.loc["cnn", "cnn"] == matrix.loc[WHITE_BOX_ROW, "cnn"]
    assert ((matrix.values >= 0) & (matrix.values <= 1)).all()
    # transfer is weaker than the white-box attack on the target itself, and the ensemble transfers to both
    assert matrix.loc["softmax", "cnn"] < matrix.loc["cnn", "cnn"]
    assert matrix.loc["cnn+softmax", "cnn"] > matrix.loc["softmax", "cnn"]
    results = transfer_run.results
    assert len(results) == 3 * 2 * 2 * 2  # sources × targets × attacks × eps
    assert results["target_correct"].le(120).all() and results["n"].eq(120).all()
    assert results.loc[results["attack"] == "pgd", "mean_linf"].le(0.2 + 1e-6).all()
    assert {c.status for c in transfer_run.checks} <= {"pass", "flag", "skipped"}


def test_report_folder_is_complete_and_self_contained(transfer_run):
    run_dir = transfer_run.run_dir
    assert {p.name for p in run_dir.iterdir()} == {"report.html", "results.csv", "run.json"}
    csv = pd.read_csv(run_dir / "results.csv")
    assert {"source", "target", "attack", "eps", "success_rate", "target_robust_accuracy", "white_box",
            "beats_white_box"} <= set(csv.columns)
    assert csv["beats_white_box"].dtype == bool
    info = json.loads((run_dir / "run.json").read_text())
    assert info["kind"] == "transfer" and info["seed"] == 0 and info["config"]["sources"] == ["cnn", "softmax", "cnn+softmax"]
    html = (run_dir / "report.html").read_text()
    parser = HtmlCollector()
    parser.feed(html)
    assert all(s.startswith(("data:", "#")) for s in parser.sources)
    assert html.count("data:image/png;base64,") == 4  # one heat map per (attack, eps)
    assert "Transfer success: crafted on × judged on" in html and "Sanity checks" in html and "git commit" in html


def test_transfer_beating_white_box_is_flagged():
    rows = pd.DataFrame([
        {"source": "a", "target": "b", "attack": "pgd", "norm": "linf", "eps": 0.1, "success_rate": 0.9,
         "white_box": False, "target_correct": 100},
        {"source": "b", "target": "b", "attack": "pgd", "norm": "linf", "eps": 0.1, "success_rate": 0.5,
         "white_box": True, "target_correct": 100},
    ])
    [check] = transfer_checks(rows)
    assert check.status == "flag" and "a → b" in check.detail
    assert beats_white_box(rows).tolist() == [True, False]  # the per-row flag of results.csv
    rows.loc[0, "success_rate"] = 0.505
    assert transfer_checks(rows)[0].status == "pass"  # within one sample of noise
    assert not beats_white_box(rows).any()


def test_cli_end_to_end(tmp_path, capsys, digits_cnn, digits_softmax):
    code, out, err = run_cli(capsys, "-q", "bench", "transfer", "--source", "cnn", "--source", "softmax",
                             "--target", "cnn", "--n", "60", "--eps", "0.2", "--attack", "fgsm", "--out", str(tmp_path))
    assert code == 0, err
    run_dir = next(tmp_path.iterdir())
    assert f"report: {run_dir / 'report.html'}" in out and "white-box (target itself)" in out
    assert len(pd.read_csv(run_dir / "results.csv")) == 2


@pytest.mark.parametrize("args, message", [
    (["--source", "cnnn", "--target", "cnn"], "did you mean 'cnn'"),
    (["--source", "cnn", "--target", "softmx"], "did you mean 'softmax'"),
    (["--source", "cnn"], "--target"),
    (["--source", "cnn", "--target", ","], "no --target model given"),
    (["--source", "cnn", "--target", "cnn", "--eps", "1.5"], "exceeds 1"),
    (["--source", "cnn", "--target", "cnn", "--n", "0"], "--n must be at least 1"),
    (["--source", "cnn", "--target", "cnn+softmax"], "ensembles"),
    (["--source", "cnn+", "--target", "cnn"], "cannot read ensemble"),
    (["--source", "cnn", "--target", "cnn", "--attack", "pgdd"], "did you mean 'pgd'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    code, out, err = run_cli(capsys, "bench", "transfer", *args, "--out", str(tmp_path))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_transfer_cells_are_cached_and_keyed_by_the_run_sources(tmp_path, digits_cnn, digits_softmax):
    """A rerun is served from the cell cache with identical rows; the same reference cell in a run with other
    sources is recomputed (its row says whether its model is a source)."""
    config = dict(targets=["cnn"], n=40, eps=[0.1], attacks=["fgsm"], out=str(tmp_path))
    first = run_transfer(TransferConfig(sources=["softmax"], **config))
    again = run_transfer(TransferConfig(sources=["softmax"], **config))
    assert first.run_info["cells"]["computed"] == 2 and again.run_info["cells"]["from_cache"] == 2
    columns = ["source", "target", "success_rate", "white_box"]
    pd.testing.assert_frame_equal(first.results[columns], again.results[columns])
    other = run_transfer(TransferConfig(sources=["cnn"], **config))
    assert other.run_info["cells"]["from_cache"] == 0  # cnn now a source: its white-box cell is keyed anew
    row = other.results[(other.results["source"] == "cnn") & (other.results["target"] == "cnn")]
    assert bool(row["is_source"].iloc[0])


def test_black_box_studies_take_the_engine_options(capsys):
    for study in ("transfer", "substitute"):
        code, out, err = run_cli(capsys, "bench", study, "--target", "cnn", *(["--source", "mlp"] if study == "transfer"
                                                                              else []), "--ray-address", "auto")
        assert code == 2 and err.count("\n") == 1 and "--backend ray" in err
