"""Test-only helpers: a fake driver registered by monkeypatching the registry, and a CLI runner."""
