"""Every output sink is safe for user strings: Rich markup, matplotlib mathtext, CSV formulas, HTML, and names
that pandas would read back as numbers or NaN."""
from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers import run_cli
from trustkit.engine import BenchConfig, run_bench
from trustkit.tables import read_csv, write_csv

AWKWARD_NAMES = ["$\\foo$", "2024", "None", "NA", "nan", "=HYPERLINK(1)", "[red]m"]


@pytest.fixture(scope="module")
def awkward_runs(tmp_path_factory, digits_softmax):
    """One fgsm run per store entry with an awkward name (copies of the digits softmax)."""
    from trustkit.models.loading import load_checkpoint
    from trustkit.models.store import save_checkpoint, store_path

    module, meta = load_checkpoint(store_path("softmax-digits"))
    out = tmp_path_factory.mktemp("awkward")
    runs = []
    for index, name in enumerate(AWKWARD_NAMES):
        save_checkpoint(module, meta, store_path(name))
        result = run_bench(BenchConfig(attacks=["fgsm"], model=name, eps=[0.1, 0.2], n=20, probes=False,
                                       out=str(out / str(index))))
        runs.append(result)
    return runs


def test_awkward_model_names_survive_plots_csv_and_html(awkward_runs):
    for name, result in zip(AWKWARD_NAMES, awkward_runs):
        assert list(result.results["model"].unique()) == [name]  # the mathtext name was plotted without error
        raw = pd.read_csv(result.run_dir / "results.csv", dtype=str, keep_default_na=False)
        expected = "'" + name if name.startswith("=") else name
        assert set(raw["model"]) == {expected}  # formula cells are quoted in the file itself
        assert set(read_csv(result.run_dir / "results.csv")["model"]) == {name}
    assert "[red]m on digits" in awkward_runs[AWKWARD_NAMES.index("[red]m")].report.read_text()


def test_compare_keeps_names_as_strings(awkward_runs, tmp_path, capsys):
    code, out, err = run_cli(capsys, "report", "compare", *[str(r.run_dir) for r in awkward_runs],
                             "--out", str(tmp_path))
    assert code == 0, err
    board = read_csv(next(tmp_path.glob("*/leaderboard.csv")))
    assert set(board["model"]) == set(AWKWARD_NAMES)  # 'None', 'NA', 'nan' no longer vanish; '2024' is a name


def test_csv_formula_cells_are_quoted_and_read_back(tmp_path):
    frame = pd.DataFrame({"model": ["=cmd|' /C calc'!A0", "+1", "-x", "@sum", "plain", "None"],
                          "robust_accuracy": [0.5, -0.25, 0.1, 0.2, 0.3, 0.4]})
    path = tmp_path / "t.csv"
    write_csv(frame, path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert all(not v.startswith(("=", "+", "-", "@")) for v in raw["model"])
    assert raw["robust_accuracy"].tolist()[1] == "-0.25"  # numbers are not text: left alone
    back = read_csv(path)
    assert back["model"].tolist() == frame["model"].tolist()
    assert back["robust_accuracy"].tolist() == frame["robust_accuracy"].tolist()


def test_rich_markup_in_a_suite_description_is_printed_as_text(tmp_path, capsys, digits_cnn):
    suite = tmp_path / "markup.yaml"
    suite.write_text('name: markup\ndescription: "closing [/x] and [bold]tags"\nmodels: [cnn]\ndatasets: [digits]\n'
                     "n: 20\nthreat_models: [{norm: linf, eps: [0.1]}]\nattacks: [fgsm]\n")
    code, _, err = run_cli(capsys, "bench", "--suite", str(suite), "--out", str(tmp_path / "reports"))
    assert code == 0, err
    assert "closing [/x] and [bold]tags" in next((tmp_path / "reports").glob("*/report.html")).read_text()
