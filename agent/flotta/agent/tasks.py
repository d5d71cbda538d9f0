"""Kept for ``flotta.agent.daemon``, which imports ``TaskSet`` from here: the helper itself is
:mod:`flotta.tasks`, shared with the operator and the bridge."""

from flotta.tasks import TaskSet

__all__ = ["TaskSet"]
