import time

import pytest
import torch

from trustkit.data import load_dataset
from trustkit.train import TrainConfig, default_config, train_model
from trustkit.train.fit import crop_flip


def test_training_learns_digits(tmp_path):
    result = train_model("softmax", "digits", out=tmp_path / "s.safetensors", epochs=5)
    first, last = result.history.epochs[0], result.history.epochs[-1]
    assert last["train_loss"] < first["train_loss"]
    assert last["test_accuracy"] > 0.9
    from trustkit.models.store import read_metadata

    assert result.metadata["recipe"]["epochs"] == 5 and read_metadata(result.path)["recipe"]["epochs"] == 5


def test_training_is_reproducible_with_a_seed(tmp_path):
    a = train_model("mlp", "digits", out=tmp_path / "a", epochs=2, seed=3)
    b = train_model("mlp", "digits", out=tmp_path / "b", epochs=2, seed=3)
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_crop_flip_keeps_shape_and_content():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    values = set(x.flatten().tolist()) | {0.0}
    assert set(out.flatten().tolist()) <= values  # only original pixels or zero padding
    same = crop_flip(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)


def test_triangle_schedule_is_the_fast_at_one():
    """Linear from 0 to the peak at 40% of the steps, then linear to 0; Adam's beta1 is left alone."""
    from trustkit.errors import InvalidArgumentError
    from trustkit.train.fit import _schedule

    optimizer = torch.optim.Adam(torch.nn.Linear(2, 2).parameters(), lr=5e-3)
    schedule = _schedule(optimizer, TrainConfig(lr=5e-3, schedule="triangle"), total_steps=10)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([5e-3 * f for f in (0.25, 0.5, 0.75, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0)])
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    assert default_config("cnn-small", "mnist", "fgsm-rs").schedule == "triangle"
    with pytest.raises(InvalidArgumentError, match="one-cycle or triangle"):
        _schedule(optimizer, TrainConfig(schedule="cosine"), total_steps=10)


def test_config_overrides_ignore_none():
    config = default_config("cnn", "mnist").with_overrides(epochs=None, lr=0.01)
    assert config.epochs == 3 and config.lr == 0.01
    assert isinstance(default_config("cnn", "unknown"), TrainConfig)


@pytest.mark.data
def test_goodfellow_softmax_mnist_fgsm_025_error_above_99(shared_data, tmp_path):
    """Goodfellow et al. 2015: shallow softmax on MNIST, FGSM eps 0.25 -> 99.9% error. We need >= 99%."""
    from trustkit.engine import BenchConfig, run_bench

    result = run_bench(BenchConfig(attacks=["fgsm"], model="softmax", dataset="mnist", eps=[0.25], n=10_000,
                                   data_root=str(shared_data), out=str(tmp_path)))
    row = result.results.iloc[0]
    assert row["clean_accuracy"] > 0.9
    assert 1 - row["robust_accuracy"] >= 0.99


REFERENCE_STEP_SECONDS = 0.14  # one digits ResNet-18 training step (batch 64) where the 60 s goal was measured


def _training_step_seconds() -> float:
    """Median seconds of one digits ResNet-18 training step (forward, backward, SGD) on this machine, now."""
    import statistics

    from trustkit.data import get_spec
    from trustkit.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet", get_spec("digits")).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    times = []
    for _ in range(8):
        started = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[2:])


@pytest.mark.slow
def test_main_job_on_fresh_store_within_a_minute(tmp_path, monkeypatch):
    """README's first command: bench fgsm on a ResNet-18 that must be trained first (<= 60 s on 2 cores).

    The 60 s goal holds on the machine where it was measured; a shared host can run several times slower, so the
    budget scales with this machine's measured speed of the same training step (a ratio taken in this run)."""
    from trustkit.cli import run

    slowdown = max(1.0, _training_step_seconds() / REFERENCE_STEP_SECONDS)
    monkeypatch.setenv("TRUSTKIT_HOME", str(tmp_path / "home"))
    started = time.perf_counter()
    assert run(["-q", "bench", "fgsm", "--model", "resnet", "--out", str(tmp_path / "r")]) == 0
    fresh = time.perf_counter() - started
    started = time.perf_counter()
    assert run(["-q", "bench", "fgsm", "--model", "resnet", "--out", str(tmp_path / "r")]) == 0
    cached = time.perf_counter() - started
    assert fresh <= 60 * slowdown and cached <= 10, (fresh, cached, slowdown)
    assert load_dataset("digits").shape == (1, 8, 8)
    # the shorter default schedule (5 epochs) must keep the accuracy: >= 97% on the digits test split
    import pandas as pd

    clean = pd.read_csv(next((tmp_path / "r").glob("*/results.csv")))["clean_accuracy"]
    assert clean.min() >= 0.97, clean.tolist()


def test_long_training_is_announced_with_an_estimate_and_the_ways_out(capsys):
    import torch

    from trustkit.train.fit import format_duration, warn_if_long

    assert [format_duration(s) for s in (42, 200, 7500)] == ["42 s", "3 min 20 s", "2 h 05 min"]
    cpu = torch.device("cpu")
    assert warn_if_long("train resnet on cifar10", 10.0, 5, 3910 * 15, cpu) == pytest.approx(117_300)
    line = capsys.readouterr().err.strip()
    assert "about 32 h 35 min on cpu" in line and "--device cuda" in line and "resnet20" in line and "--epochs" in line
    assert warn_if_long("train cnn on digits", 0.5, 5, 300, cpu) == pytest.approx(30)
    assert capsys.readouterr().err == ""  # a short run says nothing


def test_the_training_estimate_leaves_out_the_first_steps_warm_up():
    from trustkit.train.fit import StepPace

    pace = StepPace(skip=3, count=5)
    clock = [0.0, 10.0, 10.2, 10.4, 10.6, 10.8, 11.0, 11.2, 11.4]  # the first step took 10 s, the rest 0.2 s
    per_step = [pace.tick(now) for now in clock[1:]]
    assert per_step[:7] == [None] * 7  # nothing before the 3 skipped and the 5 timed steps are done
    assert per_step[7] == pytest.approx(0.2)  # timing the first five steps gave 2.16 s
    assert pace.tick(12.0) is None  # estimated once
