"""Errors of the operator's station, shown in the page where they happened.

Hierarchy (under ``client.errors.ClientError``)::

    UiError              a request the station refuses: ``status`` (HTTP), ``field`` (the
    │                    cell or control to blame, so the page puts the message there)
    ├── NotFound         no such draft, entry or scan file
    └── Forbidden        a request from outside this station's page: wrong Host, Origin or
                         session token (DNS rebinding, another web page)
"""

from __future__ import annotations

from client.errors import ClientError


class UiError(ClientError):
    code = "ui"
    status = 400

    def __init__(
        self,
        message: str,
        pesan: str | None = None,
        *,
        code: str | None = None,
        field: str | None = None,
        status: int | None = None,
        extra: dict[str, object] | None = None,
    ):
        super().__init__(message, pesan, code=code)
        self.field = field
        self.extra = extra or {}
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, str]:
        d = super().to_dict()
        if self.field is not None:
            d["field"] = self.field
        return d


class NotFound(UiError):
    code = "not_found"
    status = 404


class Forbidden(UiError):
    code = "forbidden"
    status = 403
