"""Measured ideas: one folder per experiment, each with its README, script and results (index: README.md)."""
