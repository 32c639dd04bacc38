"""trustkit: measure how far an image model can be trusted — attacks, defenses, generative models, privacy."""
from __future__ import annotations

from trustkit._version import __version__
from trustkit.data import load_dataset
from trustkit.errors import TrustkitError
from trustkit.models.loading import load_model

__all__ = ["TrustkitError", "__version__", "load_dataset", "load_model"]
