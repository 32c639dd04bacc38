"""Device choice (cuda > mps > cpu), seeding, mixed precision and progress bars."""
from __future__ import annotations

import contextlib
import os
import platform
import random
import sys
import time
from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:  # torch loads on first use: `trustkit <command> --help` never needs it
    import torch

from trustkit.errors import InvalidArgumentError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def select_device(requested: str | torch.device | None = "auto") -> torch.device:
    """Resolve ``auto`` to the best available device; refuse devices that are not there."""
    import torch

    if isinstance(requested, torch.device):
        return requested
    name = (requested or "auto").lower()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    base = name.split(":")[0]
    if base not in DEVICE_CHOICES:
        raise InvalidArgumentError(f"unknown device '{requested}'; use one of: {', '.join(DEVICE_CHOICES)}")
    if base == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError("device 'cuda' was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if base == "mps" and not mps_ok:
        raise InvalidArgumentError("device 'mps' was asked for but MPS is not available; use --device cpu or auto")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidArgumentError(f"cannot read device '{requested}'; write cpu, cuda, cuda:1 or mps") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InvalidArgumentError(f"device '{requested}' does not exist: {torch.cuda.device_count()} CUDA GPU(s) "
                                   "are visible (cuda:0 is the first)")
    return device


def device_description(device: torch.device) -> str:
    """Human-readable name of the hardware behind ``device`` (GPU model or CPU + core count)."""
    import torch

    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "mps: Apple GPU"
    cpu = platform.processor() or platform.machine()
    return f"cpu: {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); returns a CPU generator seeded with ``seed``."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA when ``enabled``; a no-op elsewhere (CPU AMP gains nothing here)."""
    import torch

    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to ``device``; on CUDA use channels_last memory format (faster convolutions)."""
    import torch

    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


SMALL_IMAGE_PIXELS = 32 * 32  # at or below this, one intra-op thread is faster (tiny ops; threads spin-wait)


@contextlib.contextmanager
def small_image_threads(shape: Sequence[int], device: torch.device) -> Iterator[None]:
    """One intra-op thread on the CPU for images of ``shape`` (…×H×W) up to 32×32 pixels: their ops are too
    small to split, and on a busy machine two OpenMP threads spin-wait for each other (measured: the 8×8 DCGAN
    discriminator, 30 steps, 2.4 s with 2 threads under load, 0.02 s with 1). Elsewhere a no-op."""
    import torch

    if device.type != "cpu" or shape[-1] * shape[-2] > SMALL_IMAGE_PIXELS:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence progress bars (the CLI's ``--quiet``)."""
    global _quiet
    _quiet = quiet


@contextlib.contextmanager
def progress(description: str, total: int | None, *, transient: bool = True) -> Iterator["ProgressTask"]:
    """A progress bar on stderr (rich); yields an object with ``advance(n)`` and ``note(text)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.console import Console

    console = Console(stderr=True)
    disabled = _quiet or not console.is_terminal
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
        transient=transient,
        disable=disabled,
    )
    from rich.markup import escape

    with bar:  # descriptions and notes carry user strings (suite, model names): never read them as markup
        task_id = bar.add_task(escape(description), total=total, note="")
        # Without a terminal (CI logs, nohup) there is no bar: milestones are printed as lines instead.
        yield ProgressTask(bar, task_id, description if disabled and not _quiet else None)


class ProgressTask:
    """Handle to one progress bar."""

    LINE_INTERVAL = 10.0  # seconds between milestone lines in a log (the first and the last always print)

    def __init__(self, bar, task_id, line_prefix: str | None = None) -> None:  # noqa: ANN001 - rich types
        self._bar, self._task, self._line_prefix = bar, task_id, line_prefix
        self._last_line: float | None = None

    def advance(self, amount: float = 1) -> None:
        self._bar.advance(self._task, amount)

    def note(self, text: str, *, milestone: bool = False, force_line: bool = False) -> None:
        """Show ``text`` beside the bar; a ``milestone`` (an epoch's end) is also a line when there is no bar, at
        most one per LINE_INTERVAL unless it is the first, the bar's last step, or ``force_line``."""
        from rich.markup import escape

        self._bar.update(self._task, note=escape(text))
        if not milestone or self._line_prefix is None:
            return
        task = self._bar.tasks[self._task]
        finished = task.total is not None and task.completed >= task.total
        now = time.monotonic()
        if self._last_line is None or finished or force_line or now - self._last_line >= self.LINE_INTERVAL:
            self._last_line = now
            print(f"{self._line_prefix}: {text}", file=sys.stderr, flush=True)


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``2 h 05 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def log(message: str) -> None:
    """One status line on stderr, unless quiet."""
    if not _quiet:
        print(message, file=sys.stderr, flush=True)


def check_run_options(n: int | None, batch_size: int, jobs: int, device: str) -> None:
    """One-line errors for a sample size, batch size or job count below 1, or a device that is not here."""
    if n is not None and n < 1:
        raise InvalidArgumentError(f"--n must be at least 1, got {n}")
    if batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be at least 1, got {batch_size}")
    if jobs < 1:
        raise InvalidArgumentError(f"--jobs must be at least 1, got {jobs}")
    select_device(device)
