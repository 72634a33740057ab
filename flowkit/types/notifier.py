"""``flowkit.types.notifier``: TaskFlow's path to the notifier (the classes of :mod:`flowkit.notifier`)."""

from flowkit.notifier import Notifier, RestrictedNotifier

__all__ = ["Notifier", "RestrictedNotifier"]
