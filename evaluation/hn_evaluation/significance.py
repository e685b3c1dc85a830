"""Paired significance test, re-exported from :mod:`hn_plugins.significance` (where it is defined) under its old
path."""

from hn_plugins.significance import compare_rows, paired_permutation_test

__all__ = ["compare_rows", "paired_permutation_test"]
