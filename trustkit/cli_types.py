"""Option types shared by every command group: values are checked where they are parsed, in one line."""
from __future__ import annotations

import click

# torch.manual_seed and numpy take seeds up to 2**63 - 1 (larger ones overflow deep inside with a traceback)
SEED = click.IntRange(0, 2**63 - 1)
