"""Helpers shared by the test suites: importable modules, no fixtures (those live in conftest)."""
