"""Errors of the device agent, each with a message the person at the device can act on.

AgentError                 anything the agent refuses or cannot do
├── ConfigError            the configuration file or an override is invalid
├── IdentityError          the device key or certificate is missing, unreadable or wrong
├── EnrolmentError         enrolment was declined or refused, or cannot proceed
└── StateStoreError        the persisted desired state cannot be written
"""

from __future__ import annotations


class AgentError(Exception):
    """The agent cannot do what was asked."""


class ConfigError(AgentError):
    """An invalid configuration file or override."""


class IdentityError(AgentError):
    """The device's identity (key, certificate) is missing, unreadable or inconsistent."""


class EnrolmentError(AgentError):
    """Enrolment was declined or refused by the control plane."""


class StateStoreError(AgentError):
    """The desired state cannot be persisted."""
