"""DynamoDB access: the only package that reads or writes the tables, one module per table.

Every status change is a compare-and-set on (status, version); every create is conditional on
the key being new. Lists use Query on an index, never Scan, and hand back an opaque token.
"""

from __future__ import annotations

from chalicelib.store.jobs import JobRecord, JobSpec, JobTable
from chalicelib.store.library import ImageRecord, ImageTable
from chalicelib.store.licenses import LicenseRecord, LicenseTable
from chalicelib.store.storage import StorageRecord, StorageTable
from chalicelib.store.tables import decode_token, encode_token
from chalicelib.store.usage import UsageRecord, UsageTable
from chalicelib.store.users import UserRecord, UserTable
from chalicelib.store.utilization import UtilizationTable

__all__ = ["ImageRecord", "JobRecord", "JobSpec", "LicenseRecord", "StorageRecord", "Store",
           "UsageRecord", "UserRecord", "decode_token", "encode_token"]


class Store(JobTable, UsageTable, ImageTable, UserTable, StorageTable, UtilizationTable,
            LicenseTable):
    """Every table, through one client and one configuration."""
