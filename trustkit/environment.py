"""What a run records about itself: versions, device, git commit, command line."""
from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from trustkit._version import __version__

PACKAGES = ("torch", "torchvision", "numpy", "pandas", "scikit-learn", "adversarial-robustness-toolbox", "captum",
            "imagecorruptions-imaug")


def versions() -> dict[str, str]:
    """Versions of trustkit, Python and the libraries that shape the numbers."""
    found = {"trustkit": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    found["cuda"] = torch.version.cuda or "none"
    return found


def git_commit() -> str | None:
    """Commit of the trustkit source tree when it is a git checkout (editable install), else None."""
    source = Path(__file__).resolve().parents[2]
    if not (source / "pyproject.toml").is_file() or not (source / ".git").exists():
        return None  # installed copy: any enclosing repository is not trustkit's
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment() -> dict[str, object]:
    """Versions, platform, git commit and the command line of this process."""
    return {
        "versions": versions(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
