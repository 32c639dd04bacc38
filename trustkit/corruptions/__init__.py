"""Common corruptions (Hendrycks & Dietterich 2019): the 15 types × 5 severities, generated locally by the
``imagecorruptions-imaug`` package through a thin adapter (:mod:`trustkit.corruptions.common`)."""
from trustkit.corruptions.common import (CATEGORIES, CORRUPTIONS, NOT_COMPARABLE, PACKAGE, REQUIREMENT, SEVERITIES,
                                         Corruption, category, corrupt, corruption_errors, corruption_names,
                                         package_version)

__all__ = ["CATEGORIES", "CORRUPTIONS", "NOT_COMPARABLE", "PACKAGE", "REQUIREMENT", "SEVERITIES", "Corruption",
           "category", "corrupt", "corruption_errors", "corruption_names", "package_version"]
