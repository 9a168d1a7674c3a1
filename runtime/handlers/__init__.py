"""The Lambda handlers, one module per function of the route table (runtime.routes).

Every function imports boto3, and it does so first, here, at the shallowest call depth: the
interpreter (CPython 3.11 and 3.12) frees a 16 KiB frame-stack chunk whenever the stack
unwinds below it, so botocore's import run a few frames deeper hit that boundary in its hot
loops and mapped and unmapped it thousands of times (about 10 ms of a cold start's CPU,
depending only on which handler imported boto3 through which chain).
"""

import boto3  # noqa: F401
