"""Reports in a real headless browser: load offline, no console errors, every plot and image renders."""
import pytest

from trustkit.report.browser import check_page, find_chromium

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="no Chromium on PATH: install Debian's chromium package to run browser checks")


def test_checker_catches_broken_images_script_errors_and_network(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><title>bad</title></head><body>'
                    '<img alt="broken" src="data:image/png;base64,AAAA">'
                    '<img alt="remote" src="http://192.0.2.1/x.png">'
                    '<script>throw new Error("boom")</script></body></html>')
    found = check_page(page)
    assert not found.ok
    assert any("boom" in e for e in found.console_errors)
    assert any("192.0.2.1" in url for url in found.network_requests)
    assert "broken" in found.broken_images


def test_bench_report_renders_cleanly_offline(tmp_path, digits_cnn):
    from trustkit.engine import BenchConfig, run_bench

    result = run_bench(BenchConfig(attacks=["fgsm", "strong"], eps=[0.1, 0.2], n=40, out=str(tmp_path),
                                   attack_params={"steps": 10, "square.n_queries": 300}))
    found = check_page(result.report)
    assert found.ok, found
    assert found.images >= 1 + 2 * 2 * 8 * 3  # curve + 4 cells × 8 gallery triples (+ heat maps)
    assert {"Sanity checks", "Run"} <= set(found.headings)


def test_suite_and_compare_reports_render_cleanly(tmp_path, digits_cnn, digits_softmax):
    from trustkit.engine import run_suite
    from trustkit.report.compare import compare_runs

    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nn: 30\nmodels: [softmax, cnn]\ndatasets: [digits]\n"
                     "threat_models: [{norm: linf, eps: [0.1, 0.2]}]\nattacks: [fgsm]\n")
    result = run_suite(str(suite), out=str(tmp_path / "r"))
    found = check_page(result.report)
    assert found.ok, found
    assert "Leaderboard" in found.headings
    compared = compare_runs([str(result.run_dir)], str(tmp_path / "c"))
    found = check_page(compared / "report.html")
    assert found.ok and found.images == 1, found


def test_privacy_and_fakes_reports_render_from_cells(tmp_path, digits_cnn, digit_generators):
    """Both reports are drawn from finished cells (galleries from the cells' packed images)."""
    from trustkit.detection.run import FakesConfig
    from trustkit.engine import run_audit, run_fakes
    from trustkit.privacy.audit import AuditConfig

    audit = run_audit(AuditConfig(n=8, layers=["relu1", "relu3"], whitebox_steps=30, inverse_steps=60,
                                  prior_steps=20, reid_steps=100, mitigations=["noise:0.5"], membership_n=60,
                                  mi_classes=2, mi_max_iter=20, out=str(tmp_path / "audit")))
    found = check_page(audit.report)
    assert found.ok, found
    assert found.images >= 2 + 2 * (1 + 3)  # leakage + mitigation figures, per layer the originals + 3 attacks
    assert {"Risk rating per layer", "Reconstructions", "Membership inference"} <= set(found.headings)
    fakes = run_fakes(FakesConfig(dataset="digits", generators=digit_generators, detectors=["cnn", "dct"],
                                  n_train=100, n_val=30, n_test=60, eps=[0.1], perturbations=["jpeg-75"],
                                  out=str(tmp_path / "fakes")))
    found = check_page(fakes.report)
    assert found.ok, found
    assert {"Detection of known generators", "Evasion by an attacker"} <= set(found.headings)


def test_explain_reports_render_cleanly_offline(tmp_path, digits_cnn):
    """The three explain reports — attributions, class maximisation, style transfer — in the browser."""
    from PIL import Image

    from trustkit.engine import run
    from trustkit.studies.explain import ExplainConfig, explain_study
    from trustkit.studies.style import StyleConfig, style_study
    from trustkit.studies.visualize import MaximizeConfig, maximize_study

    attributions = run(explain_study(ExplainConfig(methods=("grad", "gradcam"), per_class=1, randomization_n=4)),
                       out=tmp_path / "explain")
    found = check_page(attributions.report)
    assert found.ok, found
    assert {"Evidence per class", "Randomisation test", "Faithfulness: deletion and insertion"} <= set(found.headings)
    assert found.images >= 2 + 2 * 10 * 2  # two plots; per method and class an image and its map
    maximized = run(maximize_study(MaximizeConfig(classes=[0, 1], steps=20)), out=tmp_path / "maximize")
    found = check_page(maximized.report)
    assert found.ok, found
    assert found.images >= 2
    for name, colour in (("content.png", (200, 30, 30)), ("style.png", (20, 20, 220))):
        image = Image.new("RGB", (16, 16), colour)
        image.paste((255, 255, 255), (0, 0, 8, 16))
        image.save(tmp_path / name)
    styled = run(style_study(StyleConfig(content=(str(tmp_path / "content.png"),), style=(str(tmp_path / "style.png"),),
                                         style_weights=(10.0,), steps=5, size=16)), out=tmp_path / "style")
    found = check_page(styled.report)
    assert found.ok, found
    assert found.images >= 3  # content, style, result (and the loss curves)


def test_combined_report_with_certify_corruptions_calibration_renders_cleanly(tmp_path, digits_cnn):
    """A suite with studies: the attacks, certification, corruptions and calibration sections in one page."""
    from trustkit.engine import run_suite

    suite = tmp_path / "trust.yaml"
    suite.write_text("name: trust-browser\nn: 40\nmodels: [cnn]\ndatasets: [digits]\n"
                     "threat_models: [{norm: linf, eps: [0.1]}]\nattacks: [fgsm]\nstudies:\n"
                     "  certify: {sigmas: [0.25], n: 200, n_images: 50, attack_n: 4}\n"
                     "  corruptions: {corruptions: [gaussian_noise, fog], n: 40}\n"
                     "  calibration: {ood: [noise], n: 60}\n")
    result = run_suite(str(suite), out=str(tmp_path / "r"))
    found = check_page(result.report)
    assert found.ok, found
    assert {"1. Attacks", "2. Certified robustness (randomized smoothing)", "3. Common corruptions",
            "4. Calibration and out-of-distribution detection"} <= set(found.headings)
    assert found.images >= 6  # the attacks' curve, the certified-accuracy curve, heat map, reliability, OOD plots
