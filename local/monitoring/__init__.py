"""CloudWatch emulation beyond moto: EMF extraction, metric store, alarms, the web console.

``emf`` does CloudWatch Logs' part (EMF lines → metrics); ``metric_store`` keeps raw values
for percentiles; ``alarm_evaluator``/``alarm_reasons``/``alarm_runner``/``alarm_notifier``
evaluate the stack's alarms (``runtime.alarms``) and publish transitions to stderr and SNS;
``resources`` puts the alarms, dashboard, log groups and queries in the embedded CloudWatch;
``wiring`` connects the metrics of the functions and the gateway to all that; ``routes``
serves the alarms and the faults; ``webconsole`` is the console page and its JSON API.

Must not import: ``local.drills`` — except ``local.drills.faults``, whose injector it serves
at ``/_local/faults`` (with the leases' expiry) and whose ``stack_call`` keeps the console's
own reads out of the faults — or ``local.stack``. It may import
``local.common``, ``local.config``, ``local.aws``, ``local.functions`` and ``local.gateway``
(whose metrics it watches).
"""
