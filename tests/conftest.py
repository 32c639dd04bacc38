"""Shared fixtures: an isolated TRUSTKIT_HOME, small trained digits models, the offline data folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def trustkit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own empty checkpoint store (never the user's ~/.cache/trustkit)."""
    home = tmp_path_factory.mktemp("trustkit-home")
    previous = {k: os.environ.get(k) for k in ("TRUSTKIT_HOME", "TRUSTKIT_DATA")}
    os.environ["TRUSTKIT_HOME"] = str(home)
    os.environ.pop("TRUSTKIT_DATA", None)
    yield home
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def loud():
    """Each test starts with progress and status lines on (a CLI test's -q sets the process-wide switch)."""
    from trustkit.runtime import set_quiet

    set_quiet(False)
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models: one intra-op thread is faster, and on a busy 2-core machine two OpenMP
    threads spin-wait for each other (measured: 30 conv-ae steps 0.14 s with 1 thread, 10 s with 2 under load)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The offline data sets beside the repository; tests that need them skip when absent."""
    if not (SHARED_DATA / "MNIST").is_dir():
        pytest.skip(f"offline data sets not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def digits_cnn(trustkit_home: Path) -> torch.nn.Module:
    """The zoo cnn trained on digits (~2 s), cached in the session's store."""
    from trustkit import load_model

    return load_model("cnn", "digits", device="cpu")


@pytest.fixture(scope="session")
def digits_softmax(trustkit_home: Path) -> torch.nn.Module:
    from trustkit import load_model

    return load_model("softmax", "digits", device="cpu")


@pytest.fixture(scope="session")
def digits_test() -> tuple[torch.Tensor, torch.Tensor]:
    from trustkit import load_dataset

    return load_dataset("digits", "test").tensors()


@pytest.fixture(scope="session")
def digit_generators(trustkit_home: Path) -> list[str]:
    """Two small generators on digits in the session's store (a few epochs: quality is not the point)."""
    from trustkit.generative.run import train_generator

    for name in ("dcgan", "conv-vae"):
        train_generator(name, "digits", epochs=4)
    return ["dcgan", "conv-vae"]
