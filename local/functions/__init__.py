"""Lambda emulation: the invoker, events and context, the scheduler, metrics, the log tap."""
