"""Moved to `odin.pipeline_spec.render_pool` (the scheduler renders with it too); kept for old imports."""

from odin.pipeline_spec.render_pool import RenderError, RenderPool

__all__ = ["RenderError", "RenderPool"]
