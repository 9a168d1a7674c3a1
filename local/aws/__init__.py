"""The embedded AWS: moto's server in a child process, with the stack's state in it.

``embedded`` starts it and creates the stack's tables (``runtime.tables``) and its SSM
parameter; ``server`` is the child process (moto, one request at a time); ``supervisor``
restarts it when it dies and reports when it stops answering; ``metric_buffer`` batches
``PutMetricData`` to its CloudWatch, off the request path.

Must not import: ``local.gateway``, ``local.functions``, ``local.monitoring``,
``local.drills`` or the stack's wiring (``local.stack``) — only ``local.common``.
"""
