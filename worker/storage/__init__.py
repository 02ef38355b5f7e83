"""Models, sessions and migrations."""
