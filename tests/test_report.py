"""Report content: user-supplied strings are escaped; the page is self-contained."""
import torch

from trustkit.bench.run import BenchConfig, run_bench
from trustkit.data import get_spec
from trustkit.models import build_model
from trustkit.report.html import render


def test_user_strings_are_escaped(tmp_path):
    torch.manual_seed(0)
    evil = tmp_path / "<script>alert(1)<"
    evil.mkdir()
    path = evil / "m<b>x.pt"
    torch.jit.script(build_model("softmax", get_spec("digits")).eval()).save(str(path))
    result = run_bench(BenchConfig(attacks=["fgsm"], model=str(path), eps=[0.1], n=20, out=str(tmp_path / "r")))
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
    assert render  # imported from the package, not a source path
