"""The `sgan` command: the entry point above `sgan/`, `deploy/` and `pipeline/`."""
