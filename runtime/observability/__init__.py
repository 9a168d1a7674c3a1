"""Structured logs and buffered metrics (DESIGN §5)."""
