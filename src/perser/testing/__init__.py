"""Helpers for tests and recipes: small format-faithful corpora written to disk (:mod:`.corpora`)
and a command-line app with only the command groups a test needs (:mod:`.cli`)."""
