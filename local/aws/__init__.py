"""The embedded AWS: the moto server, its supervision, the stack's tables and parameter."""
