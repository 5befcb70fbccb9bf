"""The Application Library table: image names, their URIs, and where their credentials are."""

from __future__ import annotations

from pydantic import BaseModel

from chalicelib.errors import Conflict, StaleWrite
from chalicelib.store.tables import Tables, to_item

KIND_IMAGE = "image"


class ImageRecord(BaseModel):
    name: str
    uri: str
    owner: str
    private: bool
    # The Secrets Manager id of a private image's credentials; the credentials never live here.
    secretId: str | None = None
    createTime: str
    updateTime: str




class ImageTable(Tables):
    def create_image(self, image: ImageRecord) -> None:
        self._put(self._config.images_table, to_item({**image.model_dump(), "kind": KIND_IMAGE}),
                  "attribute_not_exists(#n)",
                  Conflict(f"image {image.name} is already in the Application Library"),
                  names={"#n": "name"})

    def replace_image(self, image: ImageRecord, expected_update_time: str) -> None:
        """Write the new entry only if nobody updated it since it was read."""
        self._put(self._config.images_table, to_item({**image.model_dump(), "kind": KIND_IMAGE}),
                  "updateTime = :seen", StaleWrite(f"image {image.name} changed meanwhile; try again"),
                  values={":seen": {"S": expected_update_time}})

    def get_image(self, name: str) -> ImageRecord | None:
        return self._get(self._config.images_table, {"name": name}, ImageRecord)

    def delete_image(self, name: str) -> ImageRecord:
        return self._delete(self._config.images_table, {"name": name}, ImageRecord, f"image {name}")

    def list_images(self, limit: int, token: str | None) -> tuple[list[ImageRecord], str | None]:
        return self._list_kind(self._config.images_table, KIND_IMAGE, ImageRecord, limit, token)
