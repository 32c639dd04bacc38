"""Common corruptions (Hendrycks & Dietterich 2019): severities grow in strength, the adapter keeps shape, range
and dtype and is deterministic under a seed whatever the batch, the mCE formula, and the study end to end."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("imagecorruptions", reason="common corruptions need imagecorruptions-imaug")

from trustkit.corruptions import CATEGORIES, CORRUPTIONS, corrupt, corruption_errors, corruption_names  # noqa: E402
from trustkit.errors import InvalidArgumentError, TrustkitError  # noqa: E402

from tests.helpers import run_cli  # noqa: E402

HENDRYCKS_ORDER = ["gaussian-noise", "shot-noise", "impulse-noise", "defocus-blur", "glass-blur", "motion-blur",
                   "zoom-blur", "snow", "frost", "fog", "brightness", "contrast", "elastic-transform", "pixelate",
                   "jpeg-compression"]


def _synthetic(side: int = 32, count: int = 8, seed: int = 1) -> torch.Tensor:
    """Fixed RGB test images: a smooth random background with three flat discs (edges and texture for the
    blurs, flat areas for the noises)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        base = gaussian_filter(rng.random((side, side, 3)), sigma=(side / 8, side / 8, 0))
        base = (base - base.min()) / (base.max() - base.min()) * 0.6 + 0.2
        yy, xx = np.mgrid[:side, :side]
        for _ in range(3):
            cy, cx = rng.integers(0, side, 2)
            radius = int(rng.integers(side // 8, side // 3))
            base[(yy - cy) ** 2 + (xx - cx) ** 2 < radius * radius] = rng.random(3)
        images.append(np.round(base * 255) / 255)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


def _rmse(x: torch.Tensor, c: torch.Tensor) -> float:
    return float((c - x).pow(2).mean().sqrt())


def _ssim_loss(x: torch.Tensor, c: torch.Tensor) -> float:
    from skimage.metrics import structural_similarity

    a, b = x.permute(0, 2, 3, 1).numpy(), c.permute(0, 2, 3, 1).numpy()
    return 1 - float(np.mean([structural_similarity(a[i], b[i], data_range=1, channel_axis=-1)
                              for i in range(len(a))]))


def _edge_loss(x: torch.Tensor, c: torch.Tensor) -> float:
    """The share of the image's edge energy (mean |horizontal and vertical differences|) a blur took away."""
    def edges(t: torch.Tensor) -> float:
        return float(t.diff(dim=2).abs().mean() + t.diff(dim=3).abs().mean())
    return 1 - edges(c) / edges(x)


def _snow_cover(x: torch.Tensor, c: torch.Tensor) -> float:
    """The share of pixels buried under snow (near white) that were not white before."""
    return float(((c > 0.95) & (x <= 0.95)).float().mean())


# The strength each type's parameters grow in (Hendrycks' design), measured as what that type does: noises add
# more noise (RMSE); blurs remove more edges; snow covers more of the image; the other weather and digital types
# destroy more structure (1 − SSIM). No single distance grows for all 15 (measured on these images): frost at
# levels 3-4 keeps the frost weight (0.7) and only lowers the image's (0.7 -> 0.65), so its RMSE can fall; glass
# blur at level 4 shuffles further but fewer times than at 3, so its RMSE and SSIM fall; snow's levels 2-3 trade
# many small flakes for fewer large ones, so its RMSE and SSIM barely move or fall.
MEASURES = {"noise": _rmse, "blur": _edge_loss, "snow": _snow_cover}


def test_the_fifteen_corruptions_in_hendrycks_order_and_groups():
    assert corruption_names() == HENDRYCKS_ORDER
    groups = [CORRUPTIONS.get(n).category for n in HENDRYCKS_ORDER]
    assert groups == ["noise"] * 3 + ["blur"] * 4 + ["weather"] * 4 + ["digital"] * 4
    assert set(groups) == set(CATEGORIES)
    assert CORRUPTIONS.get("gaussian_noise").name == "gaussian-noise"  # the package's names work too


def test_every_severity_is_stronger_than_the_one_before():
    x = _synthetic()
    for name in corruption_names():
        kind = CORRUPTIONS.get(name)
        measure = MEASURES.get(name, MEASURES.get(kind.category, _ssim_loss))
        strength = [measure(x, corrupt(x, name, s, seed=0)) for s in range(1, 6)]
        assert strength[0] > 0, name
        assert all(a < b for a, b in zip(strength, strength[1:])), f"{name}: {strength}"


def test_shape_range_and_dtype_are_kept_for_grey_and_colour():
    for x in (torch.rand(3, 1, 8, 8), torch.rand(2, 1, 28, 28), torch.rand(2, 3, 32, 32).double()):
        for name in ("gaussian-noise", "glass-blur", "frost", "fog", "pixelate", "jpeg-compression"):
            c = corrupt(x, name, 5, seed=0)
            assert c.shape == x.shape and c.dtype == torch.float32, name
            assert c.min() >= 0 and c.max() <= 1 and torch.isfinite(c).all(), name
            assert torch.equal((c * 255).round() / 255, c), "corrupted images are 8-bit, as the package's"


def test_deterministic_under_a_seed_and_independent_of_the_batch():
    x = _synthetic(count=6)
    indices = torch.arange(10, 16)
    state = np.random.get_state()
    for name in ("shot-noise", "impulse-noise", "glass-blur", "frost", "snow", "elastic-transform"):
        whole = corrupt(x, name, 3, seed=7, indices=indices)
        assert torch.equal(whole, corrupt(x, name, 3, seed=7, indices=indices)), name
        order = torch.tensor([5, 2, 0, 4, 1, 3])
        shuffled = corrupt(x[order], name, 3, seed=7, indices=indices[order])
        assert torch.equal(shuffled, whole[order]), f"{name} depends on the batch order"
        alone = corrupt(x[3:4], name, 3, seed=7, indices=indices[3:4])
        assert torch.equal(alone[0], whole[3]), f"{name} depends on the other images of the batch"
        assert not torch.equal(corrupt(x, name, 3, seed=8, indices=indices), whole), f"{name} ignores the seed"
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]), "the caller's NumPy RNG must be restored"


def test_bad_input_is_one_line():
    with pytest.raises(InvalidArgumentError, match="severity must be an integer from 1 to 5"):
        corrupt(torch.rand(1, 1, 8, 8), "fog", 6)
    with pytest.raises(InvalidArgumentError, match=r"\[0, 1\]"):
        corrupt(torch.rand(1, 3, 8, 8) * 2 - 0.5, "fog", 1)
    with pytest.raises(InvalidArgumentError, match="1 or 3 channels"):
        corrupt(torch.rand(1, 2, 8, 8), "fog", 1)
    with pytest.raises(TrustkitError, match="did you mean 'frost'"):
        corrupt(torch.rand(1, 1, 8, 8), "forst", 1)


def test_mce_matches_a_hand_computed_case():
    # model errors on two types at three severities, clean error 0.1; baseline's clean error 0.2
    model = {"fog": [0.2, 0.3, 0.4], "pixelate": [0.1, 0.1, 0.4]}
    base = {"fog": [0.4, 0.5, 0.6], "pixelate": [0.2, 0.2, 0.2]}
    found = corruption_errors(model, 0.1, base, 0.2)
    # CE_fog = 0.9 / 1.5 = 0.6; CE_pixelate = 0.6 / 0.6 = 1.0; mCE = 0.8
    assert found["ce"] == pytest.approx({"fog": 0.6, "pixelate": 1.0})
    assert found["mce"] == pytest.approx(0.8)
    # relative: fog (0.1+0.2+0.3) / (0.2+0.3+0.4) = 2/3; pixelate's baseline does not degrade: undefined
    assert found["relative_ce"] == pytest.approx({"fog": 2 / 3})
    assert found["relative_mce"] == pytest.approx(2 / 3)
    itself = corruption_errors(base, 0.2, base, 0.2)
    assert itself["mce"] == pytest.approx(1.0) and itself["relative_mce"] == pytest.approx(1.0)
    assert math.isnan(corruption_errors({}, 0.1, base, 0.2)["mce"])


def test_the_study_end_to_end_through_the_cli_with_a_cache_hit(capsys, tmp_path, digits_cnn):
    args = ["bench", "corruptions", "--model", "cnn", "--baseline", "softmax", "--corruption",
            "gaussian_noise,fog,pixelate", "--severity", "1,3,5", "--n", "44", "--device", "cpu"]
    # n = 44: no other test of the session computes these cells (the store is shared), so the first run computes all
    code, out, err = run_cli(capsys, *args, "-o", str(tmp_path / "a"))
    assert code == 0, err
    assert "report:" in out and "mCE" in out
    run_dir = next((tmp_path / "a").iterdir())
    import pandas as pd

    results = pd.read_csv(run_dir / "results.csv")
    assert list(results.columns) == ["model", "dataset", "corruption", "category", "severity", "accuracy", "error",
                                     "n"]
    assert set(results["model"]) == {"cnn", "softmax"} and set(results["n"]) == {44}
    corrupted = results[results["corruption"] != "clean"]
    assert len(corrupted) == 2 * 3 * 3 and set(corrupted["severity"]) == {1, 3, 5}
    summary = pd.read_csv(run_dir / "summary.csv").set_index("model")
    assert summary.loc["softmax", "mce"] == pytest.approx(1.0)  # the baseline against itself
    assert 0 < summary.loc["cnn", "mce"] < 5
    html = (run_dir / "report.html").read_text()
    assert "Not comparable with the published CIFAR-10-C files" in html and "data:image/png;base64," in html
    info = json.loads((run_dir / "run.json").read_text())
    assert info["cells"] == {"total": 8, "computed": 8, "from_cache": 0, "failed": 0}
    assert info["config"]["package"]["imagecorruptions-imaug"]

    code, _, err = run_cli(capsys, *args, "-o", str(tmp_path / "b"))
    assert code == 0, err
    again = next((tmp_path / "b").iterdir())
    assert json.loads((again / "run.json").read_text())["cells"]["from_cache"] == 8
    assert pd.read_csv(again / "results.csv").equals(results)


def test_a_bad_option_is_one_line_with_exit_2(capsys, tmp_path):
    for extra, message in ((["--corruption", "gaussian-nosie"], "did you mean 'gaussian-noise'"),
                           (["--severity", "0"], "severity must be an integer from 1 to 5"),
                           (["--severity", "high"], "--severity takes integers")):
        code, _, err = run_cli(capsys, "bench", "corruptions", *extra, "-o", str(tmp_path))
        assert code == 2, err
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir()), "nothing is written for a bad command"
