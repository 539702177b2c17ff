"""Organisation scoping: one agency never sees another's records."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from civic.kernel.identity import Principal


class OrganisationOwned(Protocol):
    """A row that belongs to one organisation."""

    organisation_id: Any


RowT = TypeVar("RowT")
SelectT = TypeVar("SelectT", bound=Select[Any])


def scoped(stmt: SelectT, column: InstrumentedAttribute[str], principal: Principal) -> SelectT:
    """Limit a query to the principal's organisation."""
    return stmt.where(column == principal.organisation_id)


async def get_owned(
    session: AsyncSession, model: type[RowT], row_id: str, *, principal: Principal
) -> RowT | None:
    """Load a row only if it belongs to the principal's organisation (else None, like absent)."""
    row = await session.get(model, row_id)
    if row is None or getattr(row, "organisation_id", None) != principal.organisation_id:
        return None
    return row
