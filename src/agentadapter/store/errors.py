"""The store's errors, on the project's one exception tree (drawn whole in :mod:`agentadapter.errors`).

::

    AgentAdapterError
    └── StoreError                  the database refused or could not find something
        ├── RecordNotFound          no such row for this tenant (the API answers 404)
        ├── RecordConflict          a unique name is taken, or the row's state forbids the change (409)
        ├── InvalidCursor           a pagination cursor that this store did not hand out (422)
        └── DatabaseUnavailable     the database cannot be reached or is too busy to answer (503)

A repository raises these instead of SQLAlchemy's exceptions, so the service layer maps them to
HTTP statuses without knowing the database. ``RecordNotFound`` is also what another tenant's row
looks like: repositories never say that a row exists elsewhere.
"""

from __future__ import annotations

from agentadapter.errors import AgentAdapterError

__all__ = ["DatabaseUnavailable", "InvalidCursor", "RecordConflict", "RecordNotFound", "StoreError"]


class StoreError(AgentAdapterError):
    """The database refused or could not find something."""


class RecordNotFound(StoreError):
    """No such row for this tenant."""

    def __init__(self, resource: str, key: object) -> None:
        self.resource = resource
        self.key = str(key)
        super().__init__(f"{resource} {key} does not exist (or belongs to another tenant); check the id")


class RecordConflict(StoreError):
    """A unique value is taken, or the row's state forbids the change."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(message)


class InvalidCursor(StoreError, ValueError):
    """A pagination cursor this store did not hand out."""

    def __init__(self, cursor: str) -> None:
        self.cursor = cursor
        super().__init__(
            f"cursor {cursor[:40]!r} is not valid; pass the next_cursor of the previous page, or none for the first"
        )


class DatabaseUnavailable(StoreError):
    """The database cannot be reached, dropped the connection, or stayed locked past its timeout.

    The message is for operators (which database, what the driver said); the API answers clients
    with a 503 of its own words and ``Retry-After``.
    """

    def __init__(self, database: str, cause: BaseException) -> None:
        self.database = database
        super().__init__(f"the database {database} is unavailable ({type(cause).__name__}: {cause})")
