"""Subcommands of the hdlgen CLI, one module each (see hdlgen.cli)."""
