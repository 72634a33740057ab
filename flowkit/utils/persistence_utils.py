"""``flowkit.utils.persistence_utils``: TaskFlow's path to :mod:`flowkit.persistence.temporary`."""

from flowkit.persistence.temporary import temporary_flow_detail, temporary_log_book

__all__ = ["temporary_flow_detail", "temporary_log_book"]
