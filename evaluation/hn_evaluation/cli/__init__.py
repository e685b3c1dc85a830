"""``hn`` subcommands of hn-evaluation, registered through the ``hn_plugins.cli`` entry-point group."""
