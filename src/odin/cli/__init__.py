"""The `odin` command line."""
