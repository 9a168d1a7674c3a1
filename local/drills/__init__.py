"""Fire drills: injected faults and the drills that use them.

``faults`` makes the functions' own AWS calls fail, slow down or crash (botocore hooks on the
runtime's clients; the monitoring serves them at ``/_local/faults``, with their leases);
``runner`` is ``python -m local drill``, running the drills of ``scenarios`` (built from
``base``): real traffic plus a fault until an alarm fires, then recovery.

Must not import: ``local.gateway``, ``local.functions``, ``local.monitoring``, ``local.aws`` or
``local.stack`` — only ``local.common``. The runner, the scenarios and their base use a stack
only through its HTTP routes (``client/`` and ``/_local/…``): they import nothing of
``local/`` but each other.
"""
