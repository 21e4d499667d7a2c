"""The `machine` subcommands, one module per group of commands."""
