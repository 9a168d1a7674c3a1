"""CloudWatch emulation: EMF extraction, the metric store, alarms and the web console."""
