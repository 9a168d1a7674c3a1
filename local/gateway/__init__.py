"""API Gateway emulation: the WebSocket gateway, @connections, the loopback guard, its metrics."""
