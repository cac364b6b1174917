"""Helpers for tests and recipes: small format-faithful corpora written to disk."""
