"""Errors of the operator.

OperatorError                  anything the operator refuses or cannot do
├── InvalidWorkloadError       an EdgeWorkload no device can run (reported, never published)
├── SelectorError              a label selector that cannot be evaluated
├── EnrolmentError             an enrolment request that is refused
└── TransportError             the broker or the Kubernetes API failed (temporary)
"""

from __future__ import annotations


class OperatorError(Exception):
    """Something the operator refuses or cannot do."""


class InvalidWorkloadError(OperatorError):
    """An EdgeWorkload that no device can run; ``problems`` lists each reason."""

    def __init__(self, workload: str, problems: list[str]) -> None:
        super().__init__(f"workload {workload}: " + "; ".join(problems))
        self.workload = workload
        self.problems = problems


class SelectorError(OperatorError):
    """A label selector that cannot be evaluated."""


class EnrolmentError(OperatorError):
    """An enrolment request that is refused."""


class TransportError(OperatorError):
    """The broker or the Kubernetes API failed; the operation may be retried."""
