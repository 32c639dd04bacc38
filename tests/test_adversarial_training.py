"""Adversarial training recipes, the catastrophic-overfitting guard, data-parallel training under torchrun."""
import os
import subprocess
import sys

import pytest
import torch

from trustkit.attacks import PGD
from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.models import build_model
from trustkit.models.store import read_metadata
from trustkit.train import RECIPES, TrainConfig, fit, store_name, train_model
from trustkit.train.fit import validation_split


def robust_accuracy(model, eps, n=200):
    x, y = load_dataset("digits").tensors(torch.arange(n))
    torch.manual_seed(0)
    x_adv = PGD(eps, steps=20)(model, x, y)
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).float().mean().item()


def test_recipes_are_registered_and_validate():
    assert {"clean", "fast", "n-fgsm", "fgsm-rs", "pgd", "trades"} <= set(RECIPES)
    with pytest.raises(InvalidArgumentError, match="needs --eps"):
        RECIPES.get("fgsm-rs")(TrainConfig(recipe="fgsm-rs", eps=0.0))
    with pytest.raises(InvalidArgumentError, match="alpha"):
        RECIPES.get("pgd")(TrainConfig(recipe="pgd", eps=0.1, alpha=-1))
    assert store_name("cnn", "mnist", "fgsm-rs", 0.3) == "cnn-mnist-fgsm-rs-eps0.3"
    assert store_name("cnn", "cifar10", "pgd", 8 / 255) == "cnn-cifar10-pgd-eps8-255"


def test_validation_split_is_disjoint_and_seeded():
    train, held = validation_split(1000, 512, 0)
    assert len(held) == 100 and len(train) == 900 and not set(train.tolist()) & set(held.tolist())
    assert torch.equal(held, validation_split(1000, 512, 0)[1])


@pytest.mark.parametrize("recipe", [pytest.param("n-fgsm", marks=pytest.mark.slow), "fgsm-rs", "pgd",
                                    pytest.param("trades", marks=pytest.mark.slow)])  # ~1 min each, CI's slow run
def test_adversarial_training_buys_robustness(tmp_path, digits_cnn, recipe):
    eps = 0.15
    result = train_model("cnn", "digits", recipe=recipe, eps=eps, epochs=12, attack_steps=3, guard_queries=100,
                         out=tmp_path / f"{recipe}.safetensors")
    meta = read_metadata(tmp_path / f"{recipe}.safetensors")
    assert meta["recipe"]["recipe"] == recipe and meta["recipe"]["eps"] == eps
    assert result.history.best_epoch is not None and all("val_pgd_accuracy" in e for e in result.history.epochs)
    assert result.history.final_accuracy > 0.85
    assert robust_accuracy(result.model, eps) > robust_accuracy(digits_cnn, eps) + 0.2
    assert not result.history.never_robust and meta["metrics"]["never_robust"] is False


def test_training_that_never_becomes_robust_is_called_out(tmp_path, capsys):
    """A linear model cannot resist eps 0.5 on digits: the result is saved, but flagged, not passed off."""
    from trustkit.runtime import set_quiet

    set_quiet(False)
    result = train_model("softmax", "digits", recipe="fgsm-rs", eps=0.5, epochs=2, out=tmp_path / "m.safetensors")
    meta = read_metadata(tmp_path / "m.safetensors")
    assert result.history.never_robust and meta["metrics"]["never_robust"] is True
    assert meta["metrics"]["best_val_pgd_accuracy"] < 0.2
    assert "adversarial training did not take" in capsys.readouterr().err



def _recorder(seen: list) -> type:
    """A linear digits model that records every input it is given (to inspect what a recipe trains on)."""

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(64, 10)

        def forward(self, x):
            seen.append(x.detach().clone())
            return self.linear(x.flatten(1))

    return Recorder


def test_fgsm_rs_reads_the_gradient_at_an_unclipped_random_start():
    """On saturated pixels (MNIST's black background) a start clipped to [0, 1] loses half its noise and FGSM
    training overfits catastrophically; the start may leave [0, 1], the training example may not."""
    seen: list[torch.Tensor] = []
    Recorder = _recorder(seen)

    torch.manual_seed(0)
    x = torch.zeros(32, 1, 8, 8)  # every pixel saturated at 0
    x[:, :, 2:6, 2:6] = 1.0  # ... or at 1
    y = torch.randint(0, 10, (32,))
    loss = RECIPES.get("fgsm-rs")(TrainConfig(recipe="fgsm-rs", eps=0.3))(Recorder(), x, y)
    start, trained = seen
    noise = start - x
    assert noise.abs().max() <= 0.3 + 1e-6 and (noise < -0.05).float().mean() > 0.4  # both signs, everywhere
    assert start.min() < -0.2 and start.max() > 1.2
    assert trained.min() >= 0 and trained.max() <= 1 and (trained - x).abs().max() <= 0.3 + 1e-6
    assert torch.isfinite(loss)


def test_collapse_rule():
    from trustkit.train.fit import is_collapse

    assert is_collapse(0.48, 0.854)  # the drop measured with FGSM-RS on MNIST (epoch 7 -> 9)
    assert not is_collapse(0.80, 0.854)  # epoch-to-epoch wobble
    assert not is_collapse(0.02, 0.15)  # robustness was never established: nothing collapsed


def test_guard_keeps_the_best_epoch():
    """A schedule that collapses robustness late must end with the weights of the best validation epoch, judged
    by the worst case of PGD-10 and Square."""
    spec = get_spec("digits")
    torch.manual_seed(0)
    model = build_model("cnn", spec)
    config = TrainConfig(recipe="fgsm-rs", eps=0.3, alpha=0.6, epochs=6, batch_size=64, lr=0.05, guard_queries=100)
    history = fit(model, load_dataset("digits", "train"), config, device=torch.device("cpu"), seed=0)
    scores = [e["val_robust_accuracy"] for e in history.epochs]
    assert history.best_epoch == 1 + scores.index(max(scores))
    assert history.best_val_robust_accuracy == max(scores)
    _, held = validation_split(1437, 512, 0)
    x, y = load_dataset("digits", "train").tensors(held)
    from trustkit.train.fit import guard_scores

    again = guard_scores(model, x, y, 0.3, torch.device("cpu"), queries=100)  # the same draws every time
    assert again["val_robust_accuracy"] == pytest.approx(max(scores))
    assert again["val_pgd_accuracy"] == pytest.approx(history.best_val_pgd_accuracy)


def test_train_cli_needs_eps_for_adversarial(capsys):
    from trustkit.cli import run

    assert run(["train", "--model", "cnn", "--adv", "fgsm-rs"]) == 2
    assert "needs a budget" in capsys.readouterr().err
    assert run(["train", "--model", "cnn", "--adv", "madness", "--eps", "0.1"]) == 2
    assert "unknown training recipe" in capsys.readouterr().err


GLOO_PROBE = """
import torch, torch.distributed as dist
dist.init_process_group("gloo")
value = torch.ones(1)
dist.all_reduce(value)
assert value.item() == dist.get_world_size()
dist.destroy_process_group()
"""


def _skip_unless_gloo_group_works(tmp_path, processes, env):
    """Tell a machine that cannot host a multi-process gloo group at all apart from a trustkit bug."""
    probe = tmp_path / "gloo_probe.py"
    probe.write_text(GLOO_PROBE)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={processes}", str(probe)], capture_output=True, text=True,
                          timeout=300, env={**env, "GLOO_SOCKET_IFNAME": env.get("GLOO_SOCKET_IFNAME", "lo")})
    if done.returncode != 0:
        pytest.skip(f"this machine cannot run a {processes}-process gloo group even without trustkit: "
                    + done.stderr[:500])


@pytest.mark.parametrize("processes", [1, 2])
def test_torchrun_data_parallel_training(tmp_path, processes):
    """The DistributedDataParallel path under torchrun (gloo on CPU): one process, and two sharing the data."""
    target = tmp_path / "ddp.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if processes > 1:
        _skip_unless_gloo_group_works(tmp_path, processes, env)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={processes}", "-m", "trustkit", "-q", "train", "--model", "softmax",
                           "--epochs", "5", "--out", str(target)], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[:3000] + "\n...\n" + done.stderr[-1500:]
    meta = read_metadata(target)
    assert meta["metrics"]["processes"] == processes
    assert meta["metrics"]["clean_accuracy"] > 0.85


def test_n_fgsm_steps_from_strong_noise_without_projecting_onto_the_eps_ball():
    """N-FGSM (de Jorge et al. 2022): noise k·eps (k = 2), a step of alpha = eps, the sum left unclipped (up to
    (k + 1)·eps); only the images stay in [0, 1]."""
    seen: list[torch.Tensor] = []
    Recorder = _recorder(seen)

    torch.manual_seed(0)
    eps = 0.1
    x = torch.full((64, 1, 8, 8), 0.5)  # mid-grey: nothing reaches the edges of [0, 1] ...
    x[:, :, :2] = 0.0  # ... except two saturated rows
    y = torch.randint(0, 10, (64,))
    loss = RECIPES.get("n-fgsm")(TrainConfig(recipe="n-fgsm", eps=eps))(Recorder(), x, y)
    noisy, trained = seen
    noise, perturbation = (noisy - x)[:, :, 2:], (trained - x)[:, :, 2:]
    assert noise.abs().max() <= 2 * eps + 1e-6 and noise.abs().max() > 1.9 * eps  # noise magnitude k·eps
    assert (noise.abs() > eps).float().mean() > 0.4  # most of it outside the eps-ball
    assert torch.allclose((trained - noisy)[:, :, 2:].abs(), torch.full_like(noise, eps))  # one step of alpha = eps
    assert perturbation.abs().max() > 2.5 * eps and perturbation.abs().max() <= 3 * eps + 1e-6  # not projected
    for image in (noisy, trained):
        assert image.min() >= 0 and image.max() <= 1  # the images stay valid
    assert torch.isfinite(loss)


def test_fast_is_pgd3_with_warmup_and_fgsm_rs_stays_wongs():
    from trustkit.train import default_config

    assert RECIPES.canonical("fast") == "fast" and RECIPES.canonical("fgsm") == "fgsm-rs"
    assert RECIPES.canonical("nfgsm") == "n-fgsm"
    assert store_name("cnn-small", "mnist", "fast", 0.3) == "cnn-small-mnist-fast-eps0.3"
    assert store_name("cnn-small", "mnist", "n-fgsm", 0.3) == "cnn-small-mnist-n-fgsm-eps0.3"
    assert default_config("cnn-small", "mnist", "n-fgsm").recipe == "n-fgsm"
    # the measured MNIST recipe: three steps, eps warmed up over the first epoch, 8 epochs of the paper's schedule
    fast = default_config("cnn-small", "mnist", "fast")
    assert (fast.recipe, fast.attack_steps, fast.eps_warmup, fast.epochs) == ("fast", 3, 1.0, 8)
    assert (fast.batch_size, fast.optimizer, fast.lr, fast.schedule) == (100, "adam", 5e-3, "triangle")
    anywhere = default_config("cnn", "digits", "fast")  # the recipe's own settings hold on every model
    assert (anywhere.attack_steps, anywhere.eps_warmup) == (3, 1.0)
    assert default_config("cnn-small", "mnist", "pgd").attack_steps == 10  # pgd stays Madry's PGD-10
    # Wong et al.'s recipe stays exactly theirs: alpha 1.25·eps, Adam, triangle to 5e-3, batch 100, 10 epochs
    wong = default_config("cnn-small", "mnist", "fgsm-rs")
    assert (wong.epochs, wong.batch_size, wong.optimizer, wong.lr, wong.schedule) == (10, 100, "adam", 5e-3, "triangle")
    assert wong.alpha is None and wong.eps_warmup == 0


def test_fast_trains_the_same_weights_as_pgd3_with_warmup(tmp_path):
    """`--adv fast` is PGD-3 with the eps warm-up, step for step: the figures measured as `--adv pgd
    --attack-steps 3` with the warm-up (benchmarks/RESULTS.md) describe it."""
    common = dict(eps=0.2, epochs=2, guard_queries=20, seed=3)
    fast = train_model("softmax", "digits", recipe="fast", out=tmp_path / "fast.safetensors", **common)
    pgd = train_model("softmax", "digits", recipe="pgd", attack_steps=3, eps_warmup=1.0,
                      out=tmp_path / "pgd.safetensors", **common)
    fast_state, pgd_state = fast.model.state_dict(), pgd.model.state_dict()
    assert fast_state.keys() == pgd_state.keys()
    assert all(torch.equal(fast_state[k], pgd_state[k]) for k in fast_state)
    different = train_model("softmax", "digits", recipe="pgd", out=tmp_path / "pgd10.safetensors", **common)
    assert not all(torch.equal(fast_state[k], v) for k, v in different.model.state_dict().items())


class _Rounding(torch.nn.Module):
    """Two classes by the mean of round(x): the values pass through torch.round, whose gradient is zero, so
    gradient attacks see nothing while the decision is as fragile as any (a pixel of 0.3 + 0.25 rounds to 1)."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))  # something for an optimizer to hold

    def forward(self, x):
        score = torch.round(x).flatten(1).mean(1) - 0.5 + 0 * self.unused
        return torch.stack([-score, score], 1) * 10


def _rounding_data(n=64):
    y = torch.arange(n) % 2
    x = torch.where(y[:, None, None, None] == 1, 0.7, 0.3) * torch.ones(n, 1, 8, 8)
    return x, y


def test_guard_score_is_the_per_image_worst_case_and_sees_through_gradient_masking():
    from trustkit.train.fit import guard_scores

    x, y = _rounding_data()
    model = _Rounding()
    scores = guard_scores(model, x, y, 0.25, torch.device("cpu"), queries=100)
    assert scores["val_pgd_accuracy"] == 1.0  # PGD reads a zero gradient: it cannot move
    assert scores["val_square_accuracy"] < 0.1  # the score-based search breaks nearly all
    assert scores["val_robust_accuracy"] == pytest.approx(min(scores["val_square_accuracy"], 1.0))
    assert scores["val_blackbox_gap"] > 0.9


def test_guard_counts_an_image_only_if_neither_attack_broke_it(monkeypatch):
    """PGD and Square break different images: the score is the accuracy on the images neither broke."""
    import trustkit.attacks
    from trustkit.train.fit import guard_scores

    def breaking(rows):
        class Fake:
            def __init__(self, eps, **options):
                pass

            def __call__(self, model, x, y):
                x = x.clone()
                x[rows, 0, 0, 0] = 1.0 - x[rows, 0, 0, 0]  # the model reads only this pixel
                return x

        return Fake

    class FirstPixel(torch.nn.Module):
        def forward(self, x):
            return torch.stack([0.5 - x[:, 0, 0, 0], x[:, 0, 0, 0] - 0.5], 1)

    monkeypatch.setattr(trustkit.attacks, "PGD", breaking(slice(0, 10)))
    monkeypatch.setattr(trustkit.attacks, "Square", breaking(slice(5, 15)))
    y = torch.arange(40) % 2
    x = y.float()[:, None, None, None].expand(40, 1, 4, 4).clone()
    scores = guard_scores(FirstPixel(), x, y, 0.3, torch.device("cpu"), queries=10)
    assert scores["val_pgd_accuracy"] == 0.75 and scores["val_square_accuracy"] == 0.75
    assert scores["val_robust_accuracy"] == 25 / 40  # images 0-14 broken by one or the other


def test_guard_records_pgd_and_square_and_flags_masking(tmp_path):
    """Each epoch's history holds validation PGD-10, Square and the per-image worst case; an epoch where Square
    beats PGD by more than a few points is flagged as gradient masking, and the checkpoint says so."""
    from trustkit.data import ImageDataset
    from trustkit.train.fit import MASKING_GAP

    x, y = _rounding_data(640)
    data = ImageDataset(x, y, name="rounding", split="train", class_names=("low", "high"))
    config = TrainConfig(recipe="n-fgsm", eps=0.25, epochs=2, batch_size=128, lr=0.01, guard_queries=50, augment=False)
    history = fit(_Rounding(), data, config, device=torch.device("cpu"), seed=0)
    for record in history.epochs:
        assert {"val_pgd_accuracy", "val_square_accuracy", "val_robust_accuracy", "val_blackbox_gap"} <= set(record)
        assert record["val_robust_accuracy"] <= min(record["val_pgd_accuracy"], record["val_square_accuracy"])
        assert record["val_blackbox_gap"] > MASKING_GAP
    assert history.masking_epochs == [1, 2] and history.kept_masking
    assert history.best_val_pgd_accuracy == 1.0 and history.best_val_robust_accuracy < 0.2
    assert history.never_robust  # judged by the worst case, not by the fooled PGD


def test_train_model_stores_the_guard_numbers(tmp_path):
    result = train_model("softmax", "digits", recipe="n-fgsm", eps=0.1, epochs=2, guard_queries=30,
                         out=tmp_path / "m.safetensors")
    meta = read_metadata(tmp_path / "m.safetensors")
    metrics = meta["metrics"]
    kept = result.history.epochs[result.history.best_epoch - 1]
    assert metrics["best_val_pgd_accuracy"] == kept["val_pgd_accuracy"]
    assert metrics["best_val_square_accuracy"] == kept["val_square_accuracy"]
    assert metrics["best_val_robust_accuracy"] == kept["val_robust_accuracy"]
    assert metrics["masking_suspected"] in (True, False) and isinstance(metrics["masking_epochs"], list)
    assert all("val_square_accuracy" in e for e in meta["history"])


def test_eps_warmup_ramps_the_training_budget():
    from trustkit.train.fit import ramped

    config = TrainConfig(recipe="n-fgsm", eps=0.3, alpha=0.2)
    half = ramped(config, 0.5)
    assert half.eps == pytest.approx(0.15) and half.alpha == pytest.approx(0.1) and half.noise == config.noise
    assert ramped(TrainConfig(recipe="n-fgsm", eps=0.3), 0.5).alpha is None  # default alpha follows eps
