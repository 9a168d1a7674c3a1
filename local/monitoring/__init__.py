"""CloudWatch emulation beyond moto: EMF extraction, metric store, alarms, the web console.

``emf`` does CloudWatch Logs' part (EMF lines → metrics); ``metric_store`` keeps raw values
for percentiles; ``alarm_evaluator``/``alarm_runner``/``alarm_notifier`` evaluate the stack's
alarms (``runtime.alarms``) and publish transitions to stderr and SNS; ``wiring`` connects
the metrics of the functions and the gateway to all that; ``routes`` serves the alarms;
``webconsole`` is the console page and its JSON API.

Must not import: ``local.drills`` (faults are the drills', not the monitoring's) or
``local.stack``. It may import ``local.common``, ``local.config``, ``local.aws``,
``local.functions`` and ``local.gateway`` (whose metrics it watches).
"""
