"""Moved to `odin.pipeline_spec.templates` (the scheduler renders with it too); kept for old imports."""

from odin.pipeline_spec.templates import SUFFIX, RenderError, check_syntax, environment, render_files, render_text

__all__ = ["SUFFIX", "RenderError", "check_syntax", "environment", "render_files", "render_text"]
