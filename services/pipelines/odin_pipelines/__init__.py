"""The pipelines service: a git repository of pipeline definitions."""
