"""Studies: every workload as a validated spec that expands into independent cells (see :mod:`.base`).

One file per study; the engine (:mod:`trustkit.engine`) runs any of them, the report renders their tables.
"""
