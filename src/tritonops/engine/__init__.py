"""Runs the deploy steps in order, persists state between them, decides rollback."""
