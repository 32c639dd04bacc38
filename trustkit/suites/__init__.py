"""Benchmark suites shipped with trustkit (YAML), found by name from any folder: ``trustkit bench --suite NAME``.

``configs/suites`` at the top of the repository links here, so the suites sit where users look for them.
"""
