"""Small helpers every part may use: atomic file writes, optional dependencies, plotting."""
