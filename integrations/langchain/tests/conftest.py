"""Puts this folder on sys.path for the integration tests (pytest does so for every conftest.py directory),
so they can import ``lc_test_memory``."""
