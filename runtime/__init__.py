"""The session service's Lambda code and the contracts it owns.

Everything under ``runtime/`` ships to AWS as-is. It must never import Pulumi,
``components`` or ``local``: those packages *render* the contracts defined here.
"""
