"""A page of a list and the window asked for: what services return and take, with no web framework. The query
parameters that fill PageParams are app.api.pagination's."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

ItemT = TypeVar("ItemT")


class PageParams(BaseModel):
    offset: int
    limit: int


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT] = Field(description="This page's items.")
    total: int = Field(description="Items in all pages together.")
    offset: int = Field(description="Items skipped before this page.")
    limit: int = Field(description="Most items a page holds.")
