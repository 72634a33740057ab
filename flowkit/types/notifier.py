"""``flowkit.types.notifier``: TaskFlow's path to the notifier (the classes of :mod:`flowkit.notifier`).

``LOG`` is the notifier's logger (the one a failing callback is reported on), so code that adjusts
that logger by TaskFlow's path reaches the logger flowkit uses.
"""

from flowkit.notifier import LOG, Notifier, RestrictedNotifier

__all__ = ["LOG", "Notifier", "RestrictedNotifier"]
