"""`trustkit privacy audit`: the run folder, the risk ratings, escaping, one-line errors (digits, tiny budgets)."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch

from tests.helpers import HtmlCollector, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FAST = ("--n", "10", "--steps", "60", "--restarts", "1", "--inverse-steps", "150", "--prior-steps", "20",
        "--reid-steps", "200", "--membership-n", "100", "--mi-classes", "3", "--mi-iter", "10")


@pytest.fixture(scope="module")
def audit_run(tmp_path_factory, digits_cnn):
    out = tmp_path_factory.mktemp("privacy")
    return out, run_cli_module(out)


def run_cli_module(out):
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from trustkit.cli import run

    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        code = run(["privacy", "audit", "--layers", "relu1,pool2,relu3", "--attacks", "white-box,inverse-net",
                    "--mitigations", "noise:1,noise:8,quant:1", *FAST, "--out", str(out)])
    return code, stdout.getvalue(), stderr.getvalue()


def test_audit_writes_a_complete_run_folder(audit_run):
    out, (code, stdout, stderr) = audit_run
    assert code == 0, stderr
    folder = next(out.iterdir())
    assert {p.name for p in folder.iterdir()} >= {"report.html", "results.csv", "layers.csv", "membership.csv",
                                                  "model_inversion.csv", "run.json"}
    assert "report:" in stdout and "relu1" in stdout
    results = pd.read_csv(folder / "results.csv")
    plain = results[(results["kind"] == "attack") & (results["mitigation"] == "none")]
    assert set(plain["layer"]) == {"relu1", "pool2", "relu3"} and set(plain["attack"]) == {"white-box", "inverse-net"}
    assert set(results["kind"]) == {"baseline", "original", "attack"}
    assert (results["reid_chance"] - 0.1).abs().max() < 1e-9 and (results["reid_target"] == "class").all()
    white = plain[plain["attack"] == "white-box"].set_index("layer")
    assert white.loc["relu1", "psnr"] > white.loc["relu3", "psnr"] + 5  # leakage falls with depth
    baseline = results[results["kind"] == "baseline"].iloc[0]
    assert white.loc["relu1", "psnr"] > baseline["psnr"] + 10
    # mitigation rows: more noise, less utility
    noise = results[(results["mitigation"].str.startswith("noise")) & (results["attack"] == "white-box")]
    by_strength = noise.set_index("mitigation")["utility_accuracy"]
    assert by_strength["noise:8"] < by_strength["noise:1"]
    info = json.loads((folder / "run.json").read_text())
    assert info["seed"] == 0 and info["config"]["layers"] == ["relu1", "pool2", "relu3"]
    assert {c["name"] for c in info["sanity_checks"]} == {"leakage falls with depth",
                                                         "attacks beat the mean-image baseline",
                                                         "re-identification classifier works"}
    assert all(c["docs"].startswith("docs/privacy.md#") for c in info["sanity_checks"])


def test_risk_ratings_follow_the_documented_thresholds(audit_run):
    from trustkit.privacy.audit import rate_layer
    from trustkit.privacy.metrics import chance_significant

    out, _ = audit_run
    folder = next(out.iterdir())
    layers = pd.read_csv(folder / "layers.csv").set_index("layer")
    results = pd.read_csv(folder / "results.csv")
    baseline_ssim = results[results["kind"] == "baseline"]["ssim"].iloc[0]
    for layer, row in layers.iterrows():
        significant = chance_significant(row["best_reid_top1"], int(row["n"]), 0.1)
        above = row["best_ssim"] >= baseline_ssim + 0.05
        expected = ("high" if (row["best_ssim"] >= 0.5 and above) or (significant and row["best_reid_top1"] >= 0.5)
                    else "medium" if (row["best_ssim"] >= 0.3 and above) or significant else "low")
        assert row["risk"] == expected, layer
    assert layers.loc["relu1", "risk"] == "high"
    # the rule itself, on made-up rows: unrecognisable and at chance is low, SSIM 0.35 is medium
    frame = pd.DataFrame([{"attack": "a", "psnr": 10.0, "ssim": 0.2, "reid_top1": 0.025, "reid_top5": 0.1}])
    assert rate_layer(frame, 0.1, 0.025, 40)["risk"] == "low"
    assert rate_layer(frame.assign(ssim=0.35), 0.1, 0.025, 40)["risk"] == "medium"
    assert rate_layer(frame.assign(ssim=0.35), 0.33, 0.025, 40)["risk"] == "low"  # not above the mean image
    assert rate_layer(frame.assign(reid_top1=0.6), 0.1, 0.025, 40)["risk"] == "high"


def test_report_is_self_contained_and_has_every_section(audit_run):
    out, _ = audit_run
    html = (next(out.iterdir()) / "report.html").read_text()
    parser = HtmlCollector()
    parser.feed(html)
    assert all(src.startswith(("data:", "#")) for src in parser.sources)
    for anchor in ("risk", "curve", "galleries", "mitigations", "membership", "model-inversion", "sanity", "run"):
        assert f'id="{anchor}"' in html
    assert html.count("data:image/png") >= 1 + 3 * 3 + 3  # leakage plot, galleries, mitigation strips
    # the risk table shows each layer's best SSIM exactly as layers.csv records it (3 decimals)
    layers = pd.read_csv(next(out.iterdir()) / "layers.csv")
    for row in layers.itertuples():
        assert f'<td class="num">{row.best_ssim:.3f}</td>' in html, row.layer


def test_user_strings_are_escaped(tmp_path, capsys, digits_cnn):
    from trustkit.models.store import store_path

    source = store_path("cnn-digits")
    evil = tmp_path / "<marquee onstart=alert(1)>evil.safetensors"
    shutil.copy(source, evil)  # one file: weights and metadata
    code, _, err = run_cli(capsys, "privacy", "audit", "--model", str(evil), "--layers", "relu2", "--attacks",
                           "white-box", "--mitigations", "none", "--no-membership", "--no-model-inversion",
                           *FAST, "--out", str(tmp_path / "out"))
    assert code == 0, err
    html = next((tmp_path / "out").iterdir()).joinpath("report.html").read_text()
    parser = HtmlCollector()
    parser.feed(html)
    assert "marquee" not in parser.tags and "&lt;marquee onstart=alert(1)&gt;evil" in html


@pytest.mark.parametrize("args, message", [
    (("--layers", "relu9"), "unknown layer 'relu9'"),
    (("--attacks", "telepathy"), "telepathy"),
    (("--mitigations", "blur:3"), "unknown mitigation"),
    (("--mitigation-layer", "conv7"), "unknown layer 'conv7'"),
    (("--n", "0"), "--n must be at least 1"),
    (("--dataset", "olivetti", "--data-root", "/nonexistent"), "Olivetti faces not found"),
])
def test_bad_input_ends_with_one_line_and_exit_code_2(tmp_path, capsys, digits_cnn, args, message):
    code, _, err = run_cli(capsys, "privacy", "audit", *args, "--out", str(tmp_path))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_help_explains_the_audit(capsys):
    code, out, _ = run_cli(capsys, "privacy", "audit", "--help")
    assert code == 0
    for word in ("--layers", "white-box", "inverse-net", "gen-prior", "SSIM", "re-identification", "--mitigations"):
        assert word in out


@pytest.mark.slow
def test_olivetti_audit_reidentifies_people_from_early_layers(tmp_path, shared_data):
    from trustkit.engine import run_audit
    from trustkit.privacy.audit import AuditConfig

    if not (shared_data / "olivetti" / "00").is_dir():
        pytest.skip("Olivetti faces not found in the offline data folder")
    torch.manual_seed(0)
    result = run_audit(AuditConfig(model="cnn", dataset="olivetti", layers=["relu1", "relu3"], attacks=["white-box"],
                                   n=40, whitebox_steps=150, whitebox_restarts=1, mitigations=[], membership=False,
                                   model_inversion=False, data_root=str(shared_data), out=str(tmp_path)))
    layers = result.tables["layers.csv"].set_index("layer")
    assert result.run_info["reid"]["test_accuracy"] > 0.8
    assert layers.loc["relu1", "best_reid_top1"] > 0.5 and layers.loc["relu1", "risk"] == "high"
    assert layers.loc["relu1", "best_psnr"] > layers.loc["relu3", "best_psnr"]


def test_olivetti_split_is_fixed_stratified_and_disjoint(shared_data):
    from trustkit import load_dataset

    if not (shared_data / "olivetti" / "00").is_dir():
        pytest.skip("Olivetti faces not found in the offline data folder")
    train, test = (load_dataset("olivetti", split, shared_data) for split in ("train", "test"))
    assert (len(train), len(test)) == (320, 80) and train.shape == (1, 64, 64)
    assert torch.bincount(train.labels).tolist() == [8] * 40 and torch.bincount(test.labels).tolist() == [2] * 40
    x_train, x_test = train.tensors()[0], test.tensors()[0]
    assert 0 <= x_train.min() and x_train.max() <= 1
    # no test photo is also a training photo, and a second load gives the same split
    distances = torch.cdist(x_test.flatten(1), x_train.flatten(1))
    assert distances.min() > 1.0
    assert torch.equal(load_dataset("olivetti", "test", shared_data).tensors()[0], x_test)
