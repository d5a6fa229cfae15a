"""Reading an uploaded table (CSV or Parquet) and checking it can be used at all.

Messages name columns and row numbers, never cell values: the data are sensitive by nature.
Row numbers are 1-based data rows (the header is not counted).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from app.datasets.errors import DatasetError

CSV_EXTENSIONS = frozenset({".csv"})
PARQUET_EXTENSIONS = frozenset({".parquet", ".pq"})
DEFAULT_MAX_CATEGORIES = 100
# A text column is "meant to be numeric" when at least this share of its non-missing values parse as numbers.
NUMERIC_SHARE = 0.9
MISSING_CATEGORY = "__missing__"


class TableSummary(BaseModel):
    """What validation found: enough to show the user before a job is queued."""

    rows: int
    columns: list[str]
    class_counts: dict[str, int] = Field(description="Rows per label class, keyed by the class as text.")


# ---------------------------------------------------------------------------------------------- reading


def table_format(path: str | Path, filename: str | None = None) -> str:
    """'csv' or 'parquet', from the extension of `filename` (the uploaded name) or else of `path`."""
    suffix = Path(filename if filename is not None else str(path)).suffix.lower()
    if suffix in CSV_EXTENSIONS:
        return "csv"
    if suffix in PARQUET_EXTENSIONS:
        return "parquet"
    raise DatasetError(
        "unsupported_file_type",
        f"unsupported file type '{suffix or '(none)'}': upload a .csv or .parquet file",
        {"extension": suffix},
        status_code=415,
    )


def read_table(path: str | Path, filename: str | None = None) -> pd.DataFrame:
    """Read a CSV (UTF-8) or Parquet file into a DataFrame, or raise DatasetError with a stable code."""
    kind = table_format(path, filename)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DatasetError("unreadable_file", f"the file cannot be read: {type(exc).__name__}") from None
    if not data.strip():
        raise DatasetError("empty_table", "the file is empty")
    return parse_csv_bytes(data) if kind == "csv" else parse_parquet_bytes(data)


def parse_csv_bytes(data: bytes) -> pd.DataFrame:
    """Decode UTF-8 (a BOM is allowed), check the header, then let pandas parse."""
    text = decode_text(data)
    header = csv_header(text)
    check_unique_columns(header)
    try:
        df = pd.read_csv(io.StringIO(text), skipinitialspace=False)
    except pd.errors.EmptyDataError:
        raise DatasetError("empty_table", "the file holds no table") from None
    except (pd.errors.ParserError, ValueError) as exc:
        # ParserError messages cite line and field counts, not values.
        raise DatasetError("unreadable_file", f"the CSV cannot be parsed: {_first_line(exc)}") from None
    return _non_empty(df)


def decode_text(data: bytes) -> str:
    """UTF-8 text, or DatasetError: binary garbage is 'unreadable_file', other encodings 'invalid_encoding'."""
    if _looks_binary(data):
        raise DatasetError("unreadable_file", "the file is not a text table: it contains binary data")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(
            "invalid_encoding",
            f"the file is not valid UTF-8 (first bad byte on line {line}); save it as UTF-8 and upload again",
            {"line": line, "byte_offset": exc.start},
        ) from None


def _looks_binary(data: bytes) -> bool:
    """NUL bytes, or many control bytes in the first 8 KiB, mean a binary file rather than mis-encoded text."""
    head = data[:8192]
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    return controls > 0.05 * len(head)


def csv_header(text: str) -> list[str]:
    """The first CSV record, read with the csv module because pandas silently renames duplicates to 'a.1'."""
    try:
        row = next(csv.reader(io.StringIO(text)), None)
    except csv.Error as exc:
        raise DatasetError("unreadable_file", f"the CSV header cannot be parsed: {exc}") from None
    if not row:
        raise DatasetError("empty_table", "the file has no header row")
    return [name.strip() for name in row]


def check_unique_columns(names: list[str]) -> None:
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        shown = ", ".join(f"'{name}'" for name in duplicates)
        raise DatasetError(
            "duplicate_columns",
            f"duplicate column names: {shown}; every column needs its own name",
            {"columns": duplicates},
        )


def parse_parquet_bytes(data: bytes) -> pd.DataFrame:
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DatasetError("unreadable_file", f"the Parquet file cannot be read: {type(exc).__name__}") from None
    # Checked on the schema: reading a table with duplicate names fails with a less useful error.
    check_unique_columns([str(name) for name in parquet.schema_arrow.names])
    check_flat_schema(parquet.schema_arrow)
    try:
        table = parquet.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DatasetError("unreadable_file", f"the Parquet data cannot be read: {type(exc).__name__}") from None
    try:
        df = table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise DatasetError("unreadable_file", f"the Parquet columns cannot be loaded: {type(exc).__name__}") from None
    df.columns = [str(c) for c in df.columns]
    return _non_empty(df)


def check_flat_schema(schema: pa.Schema) -> None:
    """Struct, list and map columns (also dictionary-encoded) have no numeric or categorical reading."""
    nested = [
        str(f.name)
        for f in schema
        if pa.types.is_nested(f.type) or (pa.types.is_dictionary(f.type) and pa.types.is_nested(f.type.value_type))
    ]
    if nested:
        raise DatasetError(
            "unsupported_column_type",
            f"column(s) of nested types (struct, list, map) cannot be used: {', '.join(nested[:20])}; "
            "flatten them into plain columns",
            {"columns": nested[:100]},
        )


def _non_empty(df: pd.DataFrame) -> pd.DataFrame:
    if df.shape[1] == 0 or len(df) == 0:
        raise DatasetError("empty_table", "the table has no data rows")
    return df


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# ---------------------------------------------------------------------------------------------- column kinds


def is_numeric_column(series: pd.Series) -> bool:
    """Numbers, booleans and timestamps are numeric features; everything else is categorical text."""
    return bool(
        pd.api.types.is_bool_dtype(series)
        or pd.api.types.is_numeric_dtype(series)
        or pd.api.types.is_datetime64_any_dtype(series)
    )


def as_numbers(series: pd.Series) -> pd.Series:
    """A numeric column as float64 (timestamps as days since 1970), missing values as NaN."""
    if pd.api.types.is_datetime64_any_dtype(series):
        values = series.to_numpy(dtype="datetime64[ns]")
        days = values.astype("int64").astype(np.float64) / 86_400e9
        days[pd.isna(series).to_numpy()] = np.nan
        return pd.Series(days, index=series.index)
    return pd.to_numeric(series, errors="coerce").astype(np.float64)


def parse_numbers(series: pd.Series) -> tuple[pd.Series, float]:
    """Text parsed as numbers, and the share of non-missing values that parsed."""
    present = series.dropna()
    if present.empty:
        return pd.Series(np.nan, index=series.index, dtype=np.float64), 0.0
    parsed = pd.to_numeric(series.astype("string").str.strip(), errors="coerce").astype(np.float64)
    share = float(parsed[present.index].notna().mean())
    return parsed, share


def numeric_view(series: pd.Series) -> pd.Series | None:
    """The column as float64 when it is numeric, or text whose every value is a number; None if categorical."""
    if is_numeric_column(series):
        return as_numbers(series)
    parsed, share = parse_numbers(series)
    return parsed if share == 1.0 else None


# ---------------------------------------------------------------------------------------------- validation


def label_classes(labels: pd.Series) -> tuple[list[str], npt.NDArray[np.int64]]:
    """Class names sorted by their text, and each row's class index. Whole-number floats read as ints."""
    values = labels
    if pd.api.types.is_float_dtype(values) and np.all(np.mod(values.to_numpy(dtype=np.float64), 1.0) == 0.0):
        values = values.astype(np.int64)
    text = values.astype(str).to_numpy()
    names = sorted(set(text.tolist()))
    index = {name: i for i, name in enumerate(names)}
    codes = np.fromiter((index[t] for t in text), dtype=np.int64, count=len(text))
    return names, codes


def validate_table(
    df: pd.DataFrame,
    label: str,
    smiles_column: str | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> TableSummary:
    """Check the table is usable for `label`; raise DatasetError naming the column (and row) at fault.

    With a SMILES column the features are its fingerprints, so other columns (identifiers, notes) are not
    checked as features.
    """
    if len(df) == 0 or df.shape[1] == 0:
        raise DatasetError("empty_table", "the table has no data rows")
    columns = [str(c) for c in df.columns]
    check_unique_columns(columns)
    if label not in columns:
        raise DatasetError(
            "missing_label", f"label column '{label}' is not in the table", {"label": label, "columns": columns}
        )
    if smiles_column is not None and smiles_column not in columns:
        raise DatasetError(
            "missing_smiles_column",
            f"SMILES column '{smiles_column}' is not in the table",
            {"column": smiles_column, "columns": columns},
        )
    labels = df[label]
    missing = labels.isna().to_numpy()
    if missing.any():
        raise DatasetError(
            "missing_labels",
            f"label column '{label}' has {int(missing.sum())} missing values (first at row {_row(missing)})",
            {"column": label, "count": int(missing.sum()), "row": _row(missing)},
        )
    names, codes = label_classes(labels)
    if len(names) < 2:
        raise DatasetError(
            "single_class", f"label column '{label}' holds a single class; at least two are needed", {"column": label}
        )
    if len(names) > max_categories:
        raise DatasetError(
            "too_many_classes",
            f"label column '{label}' has {len(names)} distinct values (at most {max_categories}); "
            "dptune needs a classification label",
            {"column": label, "count": len(names), "max": max_categories},
        )
    feature_columns = [c for c in columns if c != label] if smiles_column is None else []
    for column in feature_columns:
        check_feature_column(df[column], column, max_categories)
    check_finite_values(df, label, feature_columns, smiles_column is not None)
    counts = np.bincount(codes, minlength=len(names))
    return TableSummary(
        rows=len(df), columns=columns, class_counts={name: int(n) for name, n in zip(names, counts, strict=True)}
    )


def check_finite_values(df: pd.DataFrame, label: str, feature_columns: list[str], has_smiles: bool) -> None:
    """The label has no infinite values, and (without SMILES) some feature column has a usable value.
    Preparation treats infinities as missing and drops columns with no finite value, so a table of NaN and inf
    everywhere would otherwise pass here and fail only at a job's baseline."""
    labels = df[label]
    if is_numeric_column(labels) and not pd.api.types.is_bool_dtype(labels):
        values = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = np.isinf(values)
        if infinite.any():
            raise DatasetError(
                "non_finite_labels",
                f"label column '{label}' has {int(infinite.sum())} infinite values (first at row {_row(infinite)})",
                {"column": label, "count": int(infinite.sum()), "row": _row(infinite)},
            )
    if has_smiles:
        return
    if not feature_columns:
        raise DatasetError("no_features", "the table has no feature column besides the label")
    for column in feature_columns:
        numbers = numeric_view(df[column])
        if numbers is None:
            if df[column].notna().any():
                return
        elif np.isfinite(numbers.to_numpy(dtype=np.float64)).any():
            return
    raise DatasetError(
        "no_usable_features",
        "no feature column has a usable value: every value is missing, NaN or infinite",
        {"columns": feature_columns[:100]},
    )


def check_feature_column(series: pd.Series, column: str, max_categories: int) -> None:
    """Text that is mostly numbers must be all numbers; real categories must be few enough to one-hot encode."""
    if is_numeric_column(series):
        return
    parsed, share = parse_numbers(series)
    if NUMERIC_SHARE <= share < 1.0:
        bad = (series.notna() & parsed.isna()).to_numpy()
        raise DatasetError(
            "non_numeric_values",
            f"column '{column}' is numeric but has {int(bad.sum())} non-numeric values (first at row {_row(bad)})",
            {"column": column, "count": int(bad.sum()), "row": _row(bad)},
        )
    if share == 1.0:
        return
    distinct = int(series.nunique(dropna=True))
    if distinct > max_categories:
        raise DatasetError(
            "too_many_categories",
            f"column '{column}' has {distinct} distinct values, more than the {max_categories} allowed for a "
            "categorical column; drop it (an identifier?) or bin it",
            {"column": column, "count": distinct, "max": max_categories},
        )


def _row(mask: npt.NDArray[np.bool_]) -> int:
    """1-based data row of the first True."""
    return int(np.flatnonzero(mask)[0]) + 1
