"""Fake-image detection: features, calibration, data builder, detectors, degradations, evasion, CLI."""
import numpy as np
import pandas as pd
import pytest
import torch

from trustkit.detection import DETECTORS, make_detector
from trustkit.detection.data import build_fake_set, to_uint8
from trustkit.detection.evaluate import calibrate_threshold, evade, score_quality
from trustkit.detection.features import azimuthal_spectrum, log_dct
from trustkit.detection.linear import LinearProbe
from trustkit.detection.perturb import PERTURBATIONS
from trustkit.errors import InvalidArgumentError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic(n: int, seed: int, checker: bool) -> torch.Tensor:
    """Smooth random images; fakes add a faint checkerboard (the transposed-convolution artefact)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(low, size=32, mode="bilinear", align_corners=False) * 0.8 + 0.1
    if checker:
        pattern = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2
        x = x + 0.03 * (pattern.float() - 0.5)
    return to_uint8(x)


def test_spectral_profile_shows_a_periodic_pattern_at_its_ring():
    """White noise has a flat spectrum; a cosine with 6 cycles across adds energy on the ring of radius 6."""
    g = torch.Generator().manual_seed(0)
    noise = 0.5 + 0.05 * torch.randn(64, 1, 32, 32, generator=g)
    wave = 0.3 * torch.cos(2 * np.pi * 6 * torch.arange(32).float() / 32)[None, None, None, :]
    plain, patterned = azimuthal_spectrum(noise).mean(0), azimuthal_spectrum(noise + wave).mean(0)
    assert plain.shape == (24,) and azimuthal_spectrum(noise).max() == 1.0 and azimuthal_spectrum(noise).min() == 0.0
    lift = patterned - plain
    assert int(np.argmax(lift[1:])) + 1 == 6  # the DC ring aside, the added energy sits at radius 6


def test_dct_of_a_constant_image_is_all_dc():
    features = log_dct(torch.full((1, 1, 8, 8), 0.5))[0]
    assert features[0] == pytest.approx(np.log(0.5 * 8))  # orthonormal DC = mean · sqrt(H·W)
    assert (features[1:] < np.log(1e-5)).all()


def test_threshold_calibration_and_scores():
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    labels = np.array([0, 0, 0, 1, 1, 1])
    threshold = calibrate_threshold(scores, labels)
    assert 0.3 < threshold <= 0.6
    quality = score_quality(scores, labels, threshold)
    assert quality.auc == 1.0 and quality.ap == 1.0 and quality.accuracy == 1.0
    shifted = score_quality(scores - 0.5, labels, 0.5)
    assert shifted.auc == 1.0 and shifted.accuracy == 0.5  # same ranking, uncalibrated threshold misleads


def test_linear_probe_round_trip():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x[:, 0] + 0.1 * rng.normal(size=200) > 0).astype(int)
    probe = LinearProbe.fit(x, y)
    again = LinearProbe.from_tensors(probe.tensors())
    assert np.allclose(probe.score(x), again.score(x)) and ((probe.score(x) > 0.5) == y).mean() > 0.9


@pytest.mark.parametrize("name", ["cnn", "spectral", "dct"])
def test_detectors_catch_a_checkerboard_artefact(name):
    real, fake = synthetic(300, 0, False), synthetic(300, 1, True)
    x = torch.cat([real, fake])
    y = torch.cat([torch.zeros(300), torch.ones(300)]).long()
    detector = make_detector(name, "cifar10")  # 32×32 colour, like the synthetic images
    if name == "cnn":
        detector.epochs = 15
    detector.fit(x, y, seed=0)
    test = torch.cat([synthetic(100, 2, False), synthetic(100, 3, True)])
    labels = np.r_[np.zeros(100), np.ones(100)]
    assert score_quality(detector.score(test), labels, 0.5).auc > 0.95


def test_degradations_keep_shape_and_dtype():
    x = synthetic(4, 0, False)
    for name, perturb in PERTURBATIONS.items():
        out = perturb(x, torch.Generator().manual_seed(0))
        assert out.shape == x.shape and out.dtype == torch.uint8, name
    assert (PERTURBATIONS["noise-0.05"](x, torch.Generator().manual_seed(0)) != x).any()


def test_fake_set_is_balanced_quantised_disjoint_and_cached(digit_generators, trustkit_home):
    images = build_fake_set("digits", digit_generators, n_train=200, n_val=50, n_test=100)
    assert images.real["train"].dtype == torch.uint8
    for generator in digit_generators:
        assert {s: len(v) for s, v in images.fake[generator].items()} == {"train": 200, "val": 50, "test": 100}
    x, y = images.pair("train", digit_generators)
    assert (y == 0).sum() == (y == 1).sum() == 200
    rows = {tuple(r.tolist()) for r in images.real["train"].flatten(1)}
    val = [tuple(r.tolist()) for r in images.real["val"].flatten(1)]
    assert sum(r in rows for r in val) < 5  # digits has a few duplicate images, no shared indices
    again = build_fake_set("digits", digit_generators, n_train=200, n_val=50, n_test=100)
    assert again.key == images.key and torch.equal(again.fake["dcgan"]["test"], images.fake["dcgan"]["test"])
    assert list((trustkit_home / "detection").glob(f"digits-{images.key}.safetensors"))


def test_evasion_lowers_the_cnn_score(digit_generators):
    from trustkit.detection.run import train_detector

    images = build_fake_set("digits", digit_generators, n_train=200, n_val=50, n_test=100)
    trained = train_detector("cnn", images, "dcgan")
    x, y = images.pair("test", "dcgan")
    fakes = x[y == 1]
    evaded = evade(trained.detector, fakes, 0.25, device=torch.device("cpu"))
    assert (evaded.float() - fakes.float()).abs().max() <= 64  # 0.25 · 255, re-quantised
    assert trained.detector.score(evaded).mean() < trained.detector.score(fakes).mean() - 0.3


def test_fakes_table_shows_ap_on_unseen_generators(capsys):
    """The CNNDetection protocol's headline (AP on generators the detector never saw) reaches the terminal, not
    only the report; a study with only in-distribution rows prints no second table."""
    from trustkit.cli.detect import print_fakes

    rows = [{"kind": "cross-generator", "detector": "cnn", "train_generator": "dcgan", "test_generator": test,
             "auc": auc, "ap": ap} for test, auc, ap in (("dcgan", 1.0, 1.0), ("conv-vae", 0.81, 0.7712))]
    print_fakes(pd.DataFrame(rows))
    out = capsys.readouterr().out
    assert "AP on every generator" in out and "0.7712" in out and "trained on" in out
    print_fakes(pd.DataFrame(rows[:1]))
    assert "AP on every generator" not in capsys.readouterr().out


def test_bench_fakes_end_to_end(tmp_path, capsys, digit_generators):
    from tests.helpers import run_cli

    code, out, err = run_cli(capsys, "bench", "fakes", "--dataset", "digits", "--generators", "dcgan,conv-vae",
                             "--n-train", "200", "--n-val", "50", "--n-test", "100", "--eps", "8/255,0.25",
                             "--degradations", "jpeg-75,blur-1.0", "--out", str(tmp_path))
    assert code == 0, err
    assert "in-distribution AUC" in out
    run_dir = next(tmp_path.iterdir())
    results = pd.read_csv(run_dir / "results.csv")
    cross = results[results["kind"] == "cross-generator"]
    assert len(cross) == 3 * 2 * 2  # detectors × train generators × test generators
    assert set(results["kind"]) == {"cross-generator", "degradation", "evasion (white-box)",
                                    "evasion (transfer from cnn)"}
    white = results[results["kind"] == "evasion (white-box)"].groupby("eps")["auc"].mean()
    assert white[0.25] < white.iloc[0]
    html = (run_dir / "report.html").read_text()
    for section in ("Detection of known generators", "Generalisation to unseen generators", "Average spectra",
                    "Everyday degradations", "Evasion by an attacker"):
        assert section in html


@pytest.mark.parametrize("args, fragment", [
    (["bench", "fakes", "--dataset", "digits", "--detectors", "cnnn"], "did you mean 'cnn'"),
    (["bench", "fakes", "--dataset", "digits", "--generators", "cgan"], "unconditional"),
    (["bench", "fakes", "--dataset", "digits", "--generators", "dcgna"], "did you mean 'dcgan'"),
    (["bench", "fakes", "--dataset", "digits", "--n-train", "5000"], "at most"),
    (["bench", "fakes", "--dataset", "digits", "--degradations", "sepia"], "unknown degradation"),
    (["detect", "train", "--dataset", "digits", "--detector", "nope", "--generator", "dcgan"], "unknown detector"),
])
def test_bad_input_one_line(tmp_path, capsys, args, fragment, digit_generators):
    from tests.helpers import run_cli

    code, _, err = run_cli(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and fragment in err, err


def test_registry():
    assert {"cnn", "spectral", "dct"} <= set(DETECTORS)
    with pytest.raises(InvalidArgumentError):
        from trustkit.detection.run import FakesConfig

        FakesConfig(eps=["2"]).validate()


def test_cnn_detector_depends_only_on_its_seed():
    """The initial weights are drawn under the fit's seed: random draws made before (another cell, another
    detector built for its options) do not change the trained detector."""
    x = torch.cat([synthetic(64, 0, False), synthetic(64, 1, True)])
    y = torch.cat([torch.zeros(64), torch.ones(64)]).long()
    states = []
    for draws in (0, 7):
        torch.rand(draws)
        detector = make_detector("cnn", "cifar10")
        detector.epochs = 1
        detector.fit(x, y, seed=3)
        states.append(detector.state())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_no_cache_reuses_detectors_trained_by_the_same_run_in_any_process(digit_generators, monkeypatch):
    """--no-cache: a detector trained by one cell is reused by the run's other cells, also in other worker
    processes (which unpickle the study), and never by another run."""
    import pickle

    from trustkit.detection.cnn import CNNDetector
    from trustkit.detection.run import FakesConfig
    from trustkit.studies.fakes import DetectorCell, EvasionCell, fakes_study

    fits = []
    original = CNNDetector.fit
    monkeypatch.setattr(CNNDetector, "fit", lambda self, *a, **k: fits.append(1) or original(self, *a, **k))
    config = FakesConfig(dataset="digits", generators=digit_generators, detectors=["cnn"], n_train=100, n_val=30,
                         n_test=40, eps=[0.1], perturbations=[], use_cache=False)
    study = fakes_study(config)
    device = torch.device("cpu")
    state = study.prepare(study.cells(), device)
    study.run(DetectorCell("cnn", "dcgan"), state, device, None)
    worker = pickle.loads(pickle.dumps(study))  # what a worker process gets
    worker.run(EvasionCell("cnn", "dcgan", 0.1), worker.prepare(worker.cells(), device), device, None)
    assert len(fits) == 1
    again = fakes_study(FakesConfig(**{**config.__dict__, "generators": digit_generators}))
    again.run(DetectorCell("cnn", "dcgan"), state, device, None)
    assert len(fits) == 2  # another --no-cache run trains its own
