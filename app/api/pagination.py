"""Offset pagination shared by the list endpoints."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

ItemT = TypeVar("ItemT")

MAX_PAGE_SIZE = 500


class PageParams(BaseModel):
    offset: int
    limit: int


async def page_params(
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")] = 50,
) -> PageParams:
    return PageParams(offset=offset, limit=limit)


PageDep = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT] = Field(description="This page's items.")
    total: int = Field(description="Items in all pages together.")
    offset: int = Field(description="Items skipped before this page.")
    limit: int = Field(description="Most items a page holds.")
