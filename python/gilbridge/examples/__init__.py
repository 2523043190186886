"""Runnable examples: ``python -m gilbridge.examples.seed_demo``."""
