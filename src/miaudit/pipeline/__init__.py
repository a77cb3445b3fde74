"""The pipeline: the stages that read and write a run directory, in the order they run (docs/architecture.md)."""
