"""Tooling of the GPU benchmark runs (payload, driver, report assembly) and what the repository's scripts share."""
