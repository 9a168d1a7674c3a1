"""The Lambda handlers, one module per function of the route table (runtime.routes)."""
