"""Data sets: reading and validating tables, splits, feature preparation, built-in data sets."""

from app.datasets.builtin import BUILTIN_DATASETS, BuiltinDataset, generate_synthea_covid
from app.datasets.errors import DatasetError
from app.datasets.features import PreparationReport, prepare_dataset
from app.datasets.splits import (
    ButinaSplit,
    ColumnSplit,
    KMeansSplit,
    RandomSplit,
    SplitSpec,
    parse_split_option,
)
from app.datasets.synthea_import import import_synthea_export
from app.datasets.tables import TableSummary, read_table, validate_table

__all__ = [
    "BUILTIN_DATASETS",
    "BuiltinDataset",
    "ButinaSplit",
    "ColumnSplit",
    "DatasetError",
    "KMeansSplit",
    "PreparationReport",
    "RandomSplit",
    "SplitSpec",
    "TableSummary",
    "generate_synthea_covid",
    "import_synthea_export",
    "parse_split_option",
    "prepare_dataset",
    "read_table",
    "validate_table",
]
