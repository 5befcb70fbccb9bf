"""Bodies of the Application Library, login, user and health routes."""

from __future__ import annotations

from pydantic import Field, model_validator

from chalicelib.wire.base import IMAGE_NAME_PATTERN, USERNAME_PATTERN, Body, Role, View


class ImageRequest(Body):
    """An Application Library entry; a private one carries registry credentials."""

    name: str = Field(pattern=IMAGE_NAME_PATTERN)
    uri: str = Field(min_length=1, max_length=512)
    username: str | None = Field(default=None, min_length=1, max_length=256)
    token: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _credentials_paired(self) -> ImageRequest:
        if (self.username is None) != (self.token is None):
            raise ValueError("a private image needs both username and token")
        return self


class ImageUpdate(Body):
    """Change an entry's URI or credentials; `public: true` drops its credentials."""

    uri: str | None = Field(default=None, min_length=1, max_length=512)
    username: str | None = Field(default=None, min_length=1, max_length=256)
    token: str | None = Field(default=None, min_length=1, max_length=4096)
    public: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> ImageUpdate:
        if (self.username is None) != (self.token is None):
            raise ValueError("new credentials need both username and token")
        if self.public and self.username is not None:
            raise ValueError("public: true drops credentials; do not send new ones with it")
        if self.uri is None and self.username is None and not self.public:
            raise ValueError("nothing to update: give uri, username and token, or public")
        return self


class ImageView(View):
    name: str
    uri: str
    private: bool
    owner: str
    createTime: str
    updateTime: str


class LoginRequest(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginView(View):
    token: str
    username: str
    role: Role
    expiresAt: str


class LogoutView(View):
    username: str
    # The token presented is refused from now on (the user's other tokens are not).
    revoked: bool


class UserRequest(Body):
    username: str = Field(pattern=USERNAME_PATTERN)
    # At least 10 characters and not easy to guess (see auth.check_password).
    password: str = Field(min_length=1, max_length=1024)
    role: Role = "user"


class PasswordChange(Body):
    """A new password. A user changing their own gives the current one too; an admin setting
    another user's does not. Every token of the user stops working."""

    password: str = Field(min_length=1, max_length=1024)
    currentPassword: str | None = Field(default=None, min_length=1, max_length=1024)


class UserView(View):
    username: str
    role: Role
    createTime: str


class HealthView(View):
    status: str
    version: str
    # Absent from OpCenters older than the field.
    release: str | None = None


class WhoamiView(View):
    username: str
    role: Role
