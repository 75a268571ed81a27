"""Test helpers: real service processes, a private PostgreSQL, polling assertions."""
