"""Structured logs and buffered metrics (docs/architecture.md#observability)."""
