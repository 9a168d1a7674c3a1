"""What every part of the local stack shares: stderr lines for people, background tasks, and
its lifeline to whoever started it (it stops with make, uv or a launcher; its moto child
stops with it)."""
