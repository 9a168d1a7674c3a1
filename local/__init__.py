"""The local stack: the whole service on one machine, with API Gateway semantics.

``python -m local`` renders the contracts of ``runtime`` (route table, tables, settings) into a
local emulation, one subpackage per thing it emulates: ``aws`` (an embedded moto server),
``functions`` (the handlers run in-process like Lambda), ``gateway`` (the WebSocket API),
``monitoring`` (metrics, alarms, the web console) and ``drills`` (faults and fire drills),
over ``common``; ``stack`` wires them. The CLI client is ``client/``, apart from it. See
docs/local.md and, for what each part may import, docs/architecture.md.
"""
