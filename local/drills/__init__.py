"""Fire drills: the faults injected into the functions' AWS calls, and the drill runner."""
