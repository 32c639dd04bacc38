"""`trustkit detect score`: the user's own images scored by a stored detector, equal to the detector's own scores."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import run_cli


@pytest.fixture(scope="module")
def stored_cnn(digit_generators):  # noqa: ANN001, ANN201
    from trustkit.detection.data import build_fake_set
    from trustkit.detection.run import detector_entry, train_detector

    images = build_fake_set("digits", digit_generators, n_train=200, n_val=50, n_test=100)
    trained = train_detector("cnn", images, "dcgan")
    return detector_entry("cnn", "digits", "dcgan"), trained, images


def _write_png(array: np.ndarray, path) -> None:  # noqa: ANN001
    from PIL import Image

    Image.fromarray(array).save(path)


def test_detect_score_matches_the_detectors_own_scores_and_flags_resized_and_bad_files(stored_cnn, tmp_path, capsys):
    entry, trained, images = stored_cnn
    x, y = images.pair("test", "dcgan")
    chosen = torch.cat([x[y == 0][:3], x[y == 1][:3]])  # uint8 1×8×8
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    for i, image in enumerate(chosen):
        _write_png(image[0].numpy(), folder / ("sub" if i % 2 else ".") / f"img{i}.png")
    big = np.kron(chosen[4, 0].numpy(), np.ones((2, 2), dtype=np.uint8))  # 16×16 RGB: resized and converted
    _write_png(np.repeat(big[:, :, None], 3, axis=2), folder / "big.png")
    (folder / "broken.png").write_bytes(b"not an image")
    csv = tmp_path / "scores.csv"
    code, out, err = run_cli(capsys, "detect", "score", str(folder), "--detector", entry, "--csv", str(csv))
    assert code == 0, err
    frame = pd.read_csv(csv)
    assert len(frame) == 7 and "1 unreadable file(s) skipped" in out and "1 resized to 8×8" in out
    assert "broken.png" in err
    expected = trained.detector.score(chosen)
    for i in range(6):
        row = frame[frame["file"].str.endswith(f"img{i}.png")].iloc[0]
        assert row["p_fake"] == pytest.approx(expected[i], rel=1e-5)
        assert row["verdict"] == ("fake" if expected[i] >= trained.threshold else "real")
        assert not row["resized"]
    assert bool(frame[frame["file"].str.endswith("big.png")].iloc[0]["resized"])
    assert np.allclose(frame["threshold"], trained.threshold, rtol=1e-5)  # the CSV keeps 6 significant digits
    assert f"{int((frame['verdict'] == 'fake').sum())} of 7 image(s) called fake" in out


def test_detect_score_refuses_unknown_detectors_and_empty_folders_in_one_line(stored_cnn, tmp_path, capsys):
    entry, _, _ = stored_cnn
    (tmp_path / "empty").mkdir()
    csv = tmp_path / "out.csv"
    code, out, err = run_cli(capsys, "detect", "score", str(tmp_path / "empty"), "--detector", "det-nope",
                             "--csv", str(csv))
    assert code == 2 and "no stored detector 'det-nope'" in err and entry in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = run_cli(capsys, "detect", "score", str(tmp_path / "empty"), "--detector", entry, "--csv", str(csv))
    assert code == 2 and "holds no images" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(capsys, "detect", "score", str(tmp_path / "missing"), "--detector", entry)
    assert code == 2 and "does not exist" in err
    assert not csv.exists()


def test_list_checkpoints_scores_each_kind_by_its_own_figure(stored_cnn, capsys):
    """A detector entry shows its validation AUC and a generator none, where both used to show '?' under a
    'test accuracy' heading meant for classifiers."""
    entry, trained, _ = stored_cnn
    code, out, err = run_cli(capsys, "list", "checkpoints")
    assert code == 0, err
    row = next(line for line in out.splitlines() if entry in line)
    assert "detector" in row and "(val)" in row and "?" not in row
    generator_row = next(line for line in out.splitlines() if "gen-dcgan-digits" in line)
    assert "generator" in generator_row and "?" not in generator_row
