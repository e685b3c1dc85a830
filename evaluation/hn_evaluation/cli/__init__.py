"""hn-evaluation's ``hn`` sub-commands (``hn eval``, ``hn benchmark``).

``hn`` finds them through the entry-point group ``hn_plugins.cli`` (declared in hn-evaluation's pyproject.toml):
each entry point is a module's ``register(subparsers)``. Importing these modules is light; the evaluation code
loads when a command runs.
"""
