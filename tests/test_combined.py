"""Suites with ``studies:``: attacks, certification, corruptions and calibration of the same models in one run,
one cache and one report (trustkit/studies/combined.py, trustkit/report/combined.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli
from trustkit.studies.suite import parse_suite
from trustkit.yamlspec import SpecError

SUITE = """\
name: trust-test
description: every trust question on two digits models
seed: 0
n: 40
models: [softmax, cnn]
datasets: [digits]
threat_models:
  - {norm: linf, eps: [0.1]}
attacks: [fgsm]
studies:
  certify: {sigmas: [0.25], n: 200, n_images: 50, attack_n: 4}
  corruptions: {corruptions: [gaussian_noise, brightness], n: 40}
  calibration: {ood: [noise], n: 60}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("edit, message", [
    (("  certify:", "  certfy:"), "line 11: unknown study 'certfy' (did you mean 'certify'?)"),
    (("n_images: 50", "images: 50"), "line 11: certify has no setting 'images'"),
    (("{ood: [noise], n: 60}", "{ood: [noise], out: /tmp}"), "line 13: 'out' of calibration comes from the command line"),
    (("{ood: [noise], n: 60}", "[noise]"), "line 13: the settings of 'calibration' must be a mapping"),
    (("sigmas: [0.25]", "sigmas: [-1]"), "study certify on digits: --sigma must be a finite number > 0"),
])
def test_bad_studies_fail_with_their_line(tmp_path, edit, message):
    from trustkit.studies.bench import suite_study

    path = write(tmp_path, SUITE.replace(*edit))
    with pytest.raises(SpecError) as caught:
        suite_study(str(path))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_studies_take_the_suite_models_and_data():
    suite = parse_suite(SUITE, "trust-test.yaml")
    assert [kind for kind, _ in suite.studies] == ["certify", "corruptions", "calibration"]
    assert suite.studies[0][1] == {"sigmas": (0.25,), "n": 200, "n_images": 50, "attack_n": 4}
    from trustkit.studies.bench import suite_study
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        study = suite_study(str(write(Path(folder), SUITE)))
    assert study.kind == "combined"
    assert [p.kind for p in study.parts] == ["suite", "certify", "corruptions", "calibration"]
    assert all(p.config.models == ("softmax", "cnn") and p.config.dataset == "digits" for p in study.parts[1:])
    # every cell keeps its own part's group, so groups never mix parts
    assert {c.group[0] for c in study.cells()} == {0, 1, 2, 3}


def test_one_run_one_report_and_the_parts_share_the_cache(tmp_path, capsys):
    path = write(tmp_path, SUITE)
    code, out, err = run_cli(capsys, "-q", "bench", "--suite", str(path), "--out", str(tmp_path / "r"))
    assert code == 0, err
    run_dir = Path(out.strip().splitlines()[-1].removeprefix("report: ")).parent
    files = {p.name for p in run_dir.iterdir()}
    assert {"results.csv", "certify_results.csv", "certify_certificates.csv", "corruptions_results.csv",
            "calibration_results.csv", "calibration_ood.csv", "report.html", "robustbench.json"} <= files
    info = json.loads((run_dir / "run.json").read_text())
    assert info["kind"] == "combined" and info["cells"]["failed"] == 0
    assert [p["kind"] for p in info["config"]["parts"]] == ["suite", "certify", "corruptions", "calibration"]
    html = (run_dir / "report.html").read_text()
    assert html.count("<html") == 1 and html.count("</html>") == 1  # sections, not pages pasted together
    for title in ("1. Attacks", "2. Certified robustness", "3. Common corruptions", "4. Calibration"):
        assert title in html
    assert "certified accuracy" in out and "OOD" in out  # each part's own terminal table

    # the same cells computed by the standalone commands are served from the cache, and vice versa
    code, out, err = run_cli(capsys, "-q", "certify", "--model", "softmax,cnn", "--sigma", "0.25", "--n", "200",
                             "--n-images", "50", "--attack-n", "4", "--out", str(tmp_path / "c"))
    assert code == 0, err
    certify_run = Path(out.strip().splitlines()[-1].removeprefix("report: ")).parent
    cells = json.loads((certify_run / "run.json").read_text())["cells"]
    assert cells["computed"] == 0 and cells["from_cache"] == cells["total"] > 0
    import pandas as pd

    assert pd.read_csv(certify_run / "results.csv").equals(pd.read_csv(run_dir / "certify_results.csv"))
