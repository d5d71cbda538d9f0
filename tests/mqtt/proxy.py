"""Moved to :mod:`tests.fixtures.proxy` (shared with the agent's tests); kept while a test
still imports it from here."""

from tests.fixtures.proxy import CuttableProxy

__all__ = ["CuttableProxy"]
