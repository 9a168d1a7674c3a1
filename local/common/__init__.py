"""What every part of the local stack shares: stderr lines for people, background tasks."""
