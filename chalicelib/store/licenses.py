"""The licenses table: the license applied to this OpCenter (one item, `current`), kept as
the signed document it came in, so that it is checked again whenever it is read."""

from __future__ import annotations

from pydantic import BaseModel

from chalicelib.store.tables import Tables, to_item

CURRENT = "current"


class LicenseRecord(BaseModel):
    licenseId: str = CURRENT
    # The document as applied (wire.licenses.LicenseDocument, JSON).
    document: str
    appliedTime: str
    appliedBy: str


class LicenseTable(Tables):
    def current_license(self) -> LicenseRecord | None:
        return self._get(self._config.licenses_table, {"licenseId": CURRENT}, LicenseRecord)

    def put_license(self, record: LicenseRecord) -> None:
        """Apply `record`, replacing any license applied before."""
        self._db.put_item(TableName=self._config.licenses_table,
                          Item=to_item(record.model_dump()))

    def remove_license(self) -> LicenseRecord:
        """Remove the applied license (NotFound if there is none)."""
        return self._delete(self._config.licenses_table, {"licenseId": CURRENT}, LicenseRecord,
                            "a license of this OpCenter")
