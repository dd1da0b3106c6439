"""Errors that carry their HTTP meaning, so every layer can fail a request the same way."""

from __future__ import annotations


class ClientError(Exception):
    """A bad request: answered with `status` and `{"error": error, "detail": detail}`."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


class ModelLoadError(RuntimeError):
    """A model that cannot be used; the message names the setting that points at it."""
