"""The DAG engine: decides what happens to a job (`decide`), persists it (`change`), runs attempts (`engine`)."""

from odin_scheduler.engine.engine import Engine, EngineConfig

__all__ = ["Engine", "EngineConfig"]
