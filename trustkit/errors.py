"""Errors that reach the user as one line (problem + fix) and exit code 2.

Everything trustkit raises on bad input derives from :class:`TrustkitError`; the CLI prints
``error: <message>`` on stderr and exits with :data:`EXIT_USAGE` (traceback only with ``--debug``).
"""
from __future__ import annotations

EXIT_USAGE = 2


class TrustkitError(Exception):
    """Bad input or environment; the message names the problem and the fix in one line."""


class UnknownNameError(TrustkitError, KeyError):
    """A registry lookup failed (unknown model, attack, data set ...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(TrustkitError, ValueError):
    """An argument is out of range or malformed (eps < 0, n < 1, '8/0' ...)."""


class DataNotFoundError(TrustkitError, FileNotFoundError):
    """A data set is not on disk where trustkit looked."""


class CheckpointError(TrustkitError):
    """A checkpoint or model file is missing, corrupt, unsafe (pickle) or of an unknown format."""


class ShapeMismatchError(TrustkitError, ValueError):
    """Images of this shape do not fit the model."""
