"""Lambda (and EventBridge) emulation: the route table's handlers run in this process.

``invoker`` runs a handler on a bounded thread pool with a Lambda-shaped context and its
timeout; ``environment`` renders the environment the functions see; ``iam`` checks each of
their AWS calls against the deployed policy; ``events`` builds the API Gateway proxy and
scheduled events; ``scheduler`` fires the ``SCHEDULED`` functions; ``metrics`` publishes
AWS/Lambda metrics; ``log_tap`` copies the functions' stdout lines to the stack's readers and
``log_shipper`` ships them to CloudWatch Logs.

Must not import: ``local.gateway``, ``local.monitoring`` or ``local.stack``. It may import
``local.common``, ``local.config``, ``local.aws`` and ``local.drills.faults`` alone of the
drills (the crash and per-function targeting a fault needs from the invoker).
"""
