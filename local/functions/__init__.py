"""Lambda (and EventBridge) emulation: the route table's handlers run in this process.

``invoker`` runs a handler on a bounded thread pool with a Lambda-shaped context and its
timeout; ``events`` builds the API Gateway proxy and scheduled events; ``scheduler`` fires the
``SCHEDULED`` functions; ``metrics`` publishes AWS/Lambda metrics; ``log_tap`` copies the
functions' stdout lines to the stack's readers.

Must not import: ``local.gateway``, ``local.monitoring`` or ``local.stack``. It may import
``local.common``, ``local.aws`` (the metric buffer) and ``local.drills.faults`` alone of the
drills (the crash and per-function targeting a fault needs from the invoker).
"""
