"""The command-line client of the service, for local and deployed stacks alike.

``cli`` is ``speak``, ``listen``, ``token`` and ``connections`` (``python -m client …`` or
``python -m local …``); ``connection`` is the WebSocket core every client shares (the CLI,
the drills, bench/, tests/); ``conversation`` one speaker or listener with its heartbeats and
refreshes; ``local_stack`` the client side of a local stack's ``/_local/`` endpoints (their
paths are defined here, and the stack serves them); ``connections_table`` prints them.

Must not import: anything from ``local/`` (the stack imports the client, never the reverse),
``components/``, ``bench/`` or Pulumi. From ``runtime/`` it reads only settings defaults.
"""
