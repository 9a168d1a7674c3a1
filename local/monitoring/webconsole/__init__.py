"""The web console of the local stack (``GET /_local/console``) and its small JSON API.

Not to be confused with ``local.common.console``, the stderr printer for human-readable lines.
"""
