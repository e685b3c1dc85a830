"""Experiment: see README.md in this folder."""
