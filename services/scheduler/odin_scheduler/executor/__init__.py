"""Executors run task attempts: `local` (host processes) and `instant` (in-process, for tests and benchmarks)."""
