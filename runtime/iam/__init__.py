"""IAM as AWS enforces it: each function's policy, an evaluator, and the call checks.

``policy`` builds each function's identity policy from its route-table entry and the stack's
names (no Pulumi): ``components`` renders it into the function's role, and the local stack
and the runtime tests evaluate it (``evaluate``) against every AWS call a function makes
(``calls``: the action(s) and resource ARN(s) a botocore call needs, and the botocore hook
that answers a call no statement allows with AWS's AccessDenied).
"""
