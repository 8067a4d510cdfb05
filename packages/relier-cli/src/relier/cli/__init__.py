"""relier-cli: the ``rl`` command."""
