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
    id: str = Field(description="The data set's id, for dataset_id in jobs.")
    name: str = Field(
        description="Its name: the one given at upload (else the file name), or the built-in's name and seed."
    )
    source: Literal["upload", "builtin"] = Field(description="upload (a file sent to POST /v1/datasets) or builtin.")
    builtin_name: str | None = Field(description="The built-in data set it was generated from; null for uploads.")
    filename: str | None = Field(description="The uploaded file's name, without folders.")
    format: Literal["csv", "parquet"] = Field(description="The stored file's format.")
    size_bytes: int = Field(description="Size of the stored file in bytes.")
    sha256: str = Field(description="SHA-256 of the stored file, hex.")
    label: str = Field(description="The label column the models predict.")
    smiles_column: str | None = Field(
        description="The SMILES column whose ECFP fingerprints are the features; null: the other columns are."
    )
    rows: int = Field(description="Data rows in the table.")
    columns: list[str] = Field(description="The table's column names, in order.")
    class_counts: dict[str, int] = Field(description="Rows per label value.")
    default_split: SplitSpec | None = Field(description="The split jobs on this data set use unless they give one.")
    created_at: datetime = Field(description="When it was stored (UTC).")
