"""What the datasets API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.datasets.splits import SplitSpec


class BuiltinDatasetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="synthea-covid", max_length=64, description="A built-in data set, e.g. synthea-covid.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the generator.")


class DatasetRead(BaseModel):
    id: str
    name: str
    source: Literal["upload", "builtin"]
    builtin_name: str | None
    filename: str | None = Field(description="The uploaded file's name, without folders.")
    format: Literal["csv", "parquet"]
    size_bytes: int
    sha256: str
    label: str
    smiles_column: str | None
    rows: int
    columns: list[str]
    class_counts: dict[str, int]
    default_split: SplitSpec | None = Field(description="The split jobs on this data set use unless they give one.")
    created_at: datetime
