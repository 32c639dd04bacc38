"""The CNNDetection protocol (blur + JPEG training augmentation, train on one generator, AP per test generator)
and the generators' domain FID in the fakes study."""
import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from trustkit.detection import DETECTORS, make_detector
from trustkit.detection.cnn_blur_jpeg import QUALITY_RANGE, _blur, blur_jpeg

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_blur_matches_scipy_gaussian_filter():
    """σ = 1 px: torchvision's kernel (radius 3, reflect padding) is scipy's gaussian_filter with truncate 3 and
    mode 'mirror' (the edge pixel is not repeated)."""
    image = torch.rand(1, 12, 12, generator=torch.Generator().manual_seed(0))
    expected = gaussian_filter(image[0].numpy().astype(np.float64), sigma=1.0, truncate=3.0, mode="mirror")
    assert np.allclose(_blur(image, 1.0)[0].numpy(), expected, atol=1e-5)


def test_blur_jpeg_draws_each_half_the_time_and_matches_pil_jpeg():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(400, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    out = blur_jpeg(x, generator)
    changed = (out - x).abs().flatten(1).amax(1) > 1e-6
    assert 0.65 < changed.float().mean() < 0.85  # 1 − 0.5·0.5 = 0.75 of the images are touched
    # replay the draws: blur and JPEG decisions, σ and quality, in the order blur_jpeg takes them
    replay = torch.Generator().manual_seed(0)
    blur = torch.rand(400, generator=replay) < 0.5
    sigma = torch.rand(400, generator=replay) * 3
    jpeg = torch.rand(400, generator=replay) < 0.5
    quality = torch.randint(QUALITY_RANGE[0], QUALITY_RANGE[1] + 1, (400,), generator=replay)
    # untouched images stay bit for bit; a blur of σ near 0 is the identity too
    assert not changed[~(blur | jpeg)].any() and changed[jpeg].all() and changed[blur & (sigma > 0.3)].all()
    assert quality.min() >= 30 and quality.max() <= 100 and len(set(quality.tolist())) > 40
    only_jpeg = torch.nonzero(jpeg & ~blur).flatten()[:5]
    for i in only_jpeg.tolist():
        pixels = (x[i] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=int(quality[i]))
        reference = torch.from_numpy(np.array(Image.open(buffer))).permute(2, 0, 1).float() / 255
        assert (out[i] - reference).abs().mean() < 2 / 255  # libjpeg builds differ by a level here and there


def test_augmented_detector_trains_on_augmented_batches():
    """Same data and seed: cnn-blur-jpeg ends with other weights than cnn because it saw other pixels, and its
    options (the store's cache key) say so."""
    assert "cnn-blur-jpeg" in DETECTORS
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(64, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    y = torch.arange(64) % 2
    plain, augmented = make_detector("cnn", "cifar10"), make_detector("cnn-blur-jpeg", "cifar10")
    for detector in (plain, augmented):
        detector.epochs, detector.batch_size = 2, 16  # 8 steps: one step of a one-cycle schedule barely moves
    plain.fit(x, y, seed=0)
    augmented.fit(x, y, seed=0)
    assert augmented.options() == {**plain.options(), "augment": "blur-jpeg"}
    difference = max((a - b).abs().max().item() for a, b in zip(plain.state().values(), augmented.state().values()))
    assert difference > 1e-4


def test_realism_of_real_images_is_zero_and_the_floor_positive(digit_generators):
    """A "generator" whose test fakes are the real test images sits at domain FID 0; real train vs test, above 0."""
    from trustkit.detection.data import build_fake_set
    from trustkit.detection.run import FakesConfig, measure_realism

    images = build_fake_set("digits", ["dcgan"], n_train=200, n_val=50, n_test=150)
    images.fake["copy"] = {"test": images.real["test"].clone()}
    config = FakesConfig(dataset="digits")
    copy = measure_realism(config, images, "copy", torch.device("cpu"))
    dcgan = measure_realism(config, images, "dcgan", torch.device("cpu"))
    assert abs(copy["domain_fid"]) < 1e-3 and copy["real_floor"] > 0
    assert dcgan["domain_fid"] > dcgan["real_floor"] and dcgan["real_floor"] == copy["real_floor"]


def test_protocol_trains_on_one_generator_and_tests_on_all(tmp_path, capsys, digit_generators):
    from sklearn.metrics import average_precision_score

    from tests.helpers import run_cli

    code, out, err = run_cli(capsys, "bench", "fakes", "--dataset", "digits", "--generators", "dcgan,conv-vae",
                             "--protocol", "cnndetection", "--n-train", "150", "--n-val", "40", "--n-test", "80",
                             "--eps", "8/255", "--attack-steps", "20", "--degradations", "jpeg-50", "--seed", "3",
                             "--out", str(tmp_path))
    assert code == 0, err
    run_dir = next(tmp_path.iterdir())
    results = pd.read_csv(run_dir / "results.csv")
    cross = results[results["kind"] == "cross-generator"]
    assert set(cross["detector"]) == {"cnn", "cnn-blur-jpeg"} and set(cross["train_generator"]) == {"dcgan"}
    assert sorted(cross["test_generator"]) == ["conv-vae", "conv-vae", "dcgan", "dcgan"]
    assert set(results[results["kind"].str.startswith("evasion")]["train_generator"]) == {"dcgan"}
    realism = pd.read_csv(run_dir / "realism.csv")
    assert sorted(realism["generator"]) == ["conv-vae", "dcgan"]
    assert (realism["domain_fid"] > realism["real_floor"]).all() and (realism["real_floor"] > 0).all()
    html = (run_dir / "report.html").read_text()
    assert "Average precision per test generator (CNNDetection protocol)" in html
    assert "How realistic are the generators?" in html
    # the AP of a stored detector on the unseen generator, recomputed with scikit-learn
    from trustkit.detection.data import build_fake_set
    from trustkit.detection.run import train_detector

    images = build_fake_set("digits", ["dcgan", "conv-vae"], n_train=150, n_val=40, n_test=80, seed=3)
    trained = train_detector("cnn-blur-jpeg", images, "dcgan", seed=3)
    assert trained.cached  # the run stored it
    x, y = images.pair("test", "conv-vae")
    row = cross[(cross["detector"] == "cnn-blur-jpeg") & (cross["test_generator"] == "conv-vae")].iloc[0]
    assert row["ap"] == pytest.approx(average_precision_score(y.numpy(), trained.detector.score(x)), abs=1e-5)
    # `trustkit detect score` rebuilds it from its stored options
    from trustkit.detection.run import detector_entry
    from trustkit.detection.score import load_stored_detector

    stored = load_stored_detector(detector_entry("cnn-blur-jpeg", "digits", "dcgan"))
    assert stored.name == "cnn-blur-jpeg" and np.allclose(stored.detector.score(x), trained.detector.score(x))


def test_train_on_must_be_one_of_the_generators(capsys, digit_generators):
    from tests.helpers import run_cli

    code, _, err = run_cli(capsys, "bench", "fakes", "--dataset", "digits", "--generators", "dcgan",
                           "--n-train", "200", "--n-test", "100", "--train-on", "conv-vae")
    assert code == 2 and err.count("\n") == 1 and "add it to --generators" in err, err


def test_eps_none_skips_the_evasion(tmp_path, capsys, digit_generators):
    from tests.helpers import run_cli

    code, _, err = run_cli(capsys, "bench", "fakes", "--dataset", "digits", "--generators", "dcgan",
                           "--n-train", "100", "--n-val", "30", "--n-test", "40", "--detectors", "cnn",
                           "--eps", "none", "--degradations", "none", "--no-realism", "--out", str(tmp_path))
    assert code == 0, err
    results = pd.read_csv(next(tmp_path.iterdir()) / "results.csv")
    assert not results["kind"].str.startswith("evasion").any() and (results["kind"] == "cross-generator").any()
