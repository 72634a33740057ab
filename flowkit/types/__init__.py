"""TaskFlow's ``taskflow.types`` module paths: :mod:`.failure` and :mod:`.notifier`.

flowkit keeps these concepts in :mod:`flowkit.failure` and :mod:`flowkit.notifier`; the modules here
are the same classes under the paths TaskFlow code imports them from.
"""

from flowkit.types import failure, notifier

__all__ = ["failure", "notifier"]
