"""API Gateway emulation: the WebSocket API on one port, with API Gateway's semantics.

``websocket`` serves connections ($connect before the handshake answers, route selection,
close codes, timeouts, $disconnect exactly once); ``connection`` is one connection's state and
route selection; ``integration`` what passes to and from a route's function;
``connections_api`` the @connections API; ``loopback`` the guard of every local-only path;
``web`` the aiohttp server; ``metrics`` the AWS/ApiGateway metrics; ``live_connections``
what ``/_local/connections`` lists.

Must not import: ``local.monitoring`` (the monitoring watches the gateway, never the reverse),
``local.drills`` or ``local.stack``. It may import ``local.common``, ``local.aws`` and
``local.functions`` (it invokes the functions, as API Gateway's integrations do).
"""
