"""OS updates through rpm-ostree, reported as unsupported where rpm-ostree is absent."""

from flotta.agent.osupdate.errors import OstreeCommandError, OstreeStatusError, OsUpdateError
from flotta.agent.osupdate.updater import OsUpdater

__all__ = ["OsUpdateError", "OsUpdater", "OstreeCommandError", "OstreeStatusError"]
