"""Subcommands of the `gridswarm` CLI, one module each."""
