"""Errors of the operator.

OperatorError                  anything the operator refuses or cannot do
├── SelectorError              a label selector that cannot be evaluated
├── EnrolmentError             an enrolment request that is refused
└── TransportError             the broker or the Kubernetes API failed (temporary)
"""

from __future__ import annotations


class OperatorError(Exception):
    """Something the operator refuses or cannot do."""


class SelectorError(OperatorError):
    """A label selector that cannot be evaluated."""


class EnrolmentError(OperatorError):
    """An enrolment request that is refused."""


class TransportError(OperatorError):
    """The broker or the Kubernetes API failed; the operation may be retried."""
