"""Report content: user-supplied strings are escaped; the page is self-contained."""
import torch

from trustkit.engine import BenchConfig, run_bench
from trustkit.data import get_spec
from trustkit.models import build_model
from trustkit.report.html import render


def test_user_strings_are_escaped(tmp_path):
    torch.manual_seed(0)
    evil = tmp_path / "<script>alert(1)<"
    evil.mkdir()
    path = evil / "m<b>x.pt"
    torch.jit.script(build_model("softmax", get_spec("digits")).eval()).save(str(path))
    result = run_bench(BenchConfig(attacks=["fgsm"], model=str(path), eps=[0.1], n=20, out=str(tmp_path / "r"),
                                   trust_code=True))
    html = result.report.read_text()
    assert "<script>alert(1)" not in html and "m<b>x" not in html
    assert "&lt;script&gt;alert(1)&lt;" in html and "m&lt;b&gt;x" in html
    assert "<script" not in html.lower()  # no scripts at all: the report needs none
    assert result.run_dir.name.endswith("fgsm-m-b-x-digits")  # run id is filesystem-safe


def test_filters_render_missing_values_as_dash():
    from trustkit.report.html import _num, _pct

    assert _pct(float("nan")) == "–" and _pct(0.1234) == "12.3%" and _num(None) == "–"


def test_templates_are_packaged():
    from importlib import resources

    names = {p.name for p in resources.files("trustkit.report").joinpath("templates").iterdir()}
    assert {"base.html.j2", "bench.html.j2"} <= names
    # render finds them through the installed package, not a source path
    page = render("base.html.j2", env={"versions": {"trustkit": "9.9"}}, created="today")
    assert "trustkit 9.9 · generated today" in page and "<style" in page


def test_provenance_shows_what_adversarial_training_kept():
    from trustkit.report.bench_report import _model_summary

    def summary(**metrics):
        return _model_summary({"parameters": 10, "metadata": {"arch": "cnn", "recipe": {"recipe": "fgsm-rs"},
                                                              "metrics": {"clean_accuracy": 0.9, **metrics}}})

    robust = summary(best_epoch=9, best_val_pgd_accuracy=0.918, never_robust=False)
    assert robust["adversarial training kept"] == "epoch 9, validation PGD-10 accuracy 91.8%"
    failed = summary(best_epoch=6, best_val_pgd_accuracy=0.166, never_robust=True, catastrophic_overfitting_at=8)
    assert "catastrophic overfitting at epoch 8" in failed["adversarial training kept"]
    assert "WARNING: adversarial training never became robust" in failed["adversarial training kept"]
    assert "adversarial training kept" not in summary()  # a clean model has no guard to report
