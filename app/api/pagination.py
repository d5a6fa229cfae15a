"""Offset pagination shared by the list endpoints: the query parameters of a page (app.core.pagination holds
the page itself)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from app.core.pagination import PageParams

MAX_PAGE_SIZE = 500


async def page_params(
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")] = 50,
) -> PageParams:
    return PageParams(offset=offset, limit=limit)


PageDep = Annotated[PageParams, Depends(page_params)]
