"""The bad-input corpus: malformed data sets (files in datasets/, made by make_files.py) and job specs (files in
jobs/, raw bytes, since some are not even JSON), each with the 4xx status and error code it must get.
`@DATASET@` in a job spec is replaced by the id of a valid data set uploaded first."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASETS = HERE / "datasets"
JOBS = HERE / "jobs"


@dataclass(frozen=True)
class UploadCase:
    file: str
    status: int
    code: str
    fields: dict[str, str] = field(default_factory=lambda: {"label": "outcome"})
    why: str = ""

    def content(self) -> bytes:
        return (DATASETS / self.file).read_bytes()


@dataclass(frozen=True)
class JobCase:
    file: str
    status: int
    code: str
    content_type: str = "application/json"
    why: str = ""

    def content(self, dataset_id: str) -> bytes:
        return (JOBS / self.file).read_bytes().replace(b"@DATASET@", dataset_id.encode())


UPLOADS = [
    UploadCase("binary_garbage.csv", 422, "unreadable_file", why="random bytes"),
    UploadCase("ragged_long_rows.csv", 422, "unreadable_file", why="a row with more fields than the header"),
    UploadCase("ragged_short_row.csv", 422, "missing_labels", why="a row with fewer fields: its label is missing"),
    UploadCase("utf16_bom.csv", 422, "unreadable_file", why="UTF-16 with a BOM (NUL bytes: read as binary)"),
    UploadCase("utf16le_no_bom.csv", 422, "unreadable_file", why="UTF-16 without a BOM"),
    UploadCase("latin1.csv", 422, "invalid_encoding", why="Latin-1 text that is not UTF-8"),
    UploadCase("one_class_label.csv", 422, "single_class", why="a label column with one class"),
    UploadCase("single_row.csv", 422, "single_class", why="one data row"),
    UploadCase("nan_inf_everywhere.csv", 422, "no_usable_features", why="every feature NaN, inf or empty"),
    UploadCase("overflowing_numbers.csv", 422, "no_usable_features", why="1e400 everywhere: infinite once parsed"),
    UploadCase("nan_everywhere_label_too.csv", 422, "missing_labels", why="NaN everywhere, the label too"),
    UploadCase("infinite_label.csv", 422, "non_finite_labels", why="a label of inf and -inf"),
    UploadCase("wide_10000_columns.csv", 422, "too_many_columns", why="10,000 columns (limit DPTUNE_MAX_COLUMNS)"),
    UploadCase("unterminated_quote.csv", 422, "unreadable_file", why="a quote that never closes"),
    UploadCase("gzipped.csv", 422, "unreadable_file", why="a gzip file named .csv"),
    UploadCase("json_document.csv", 422, "empty_table", why="a JSON document named .csv: a header, no rows"),
    UploadCase("nul_bytes_inside.csv", 422, "unreadable_file", why="NUL bytes inside text"),
    UploadCase("empty.csv", 422, "empty_table", why="zero bytes"),
    UploadCase("whitespace_only.csv", 422, "empty_table", why="only blanks and newlines"),
    UploadCase("header_only.csv", 422, "empty_table", why="a header and no rows"),
    UploadCase("duplicate_columns.csv", 422, "duplicate_columns", why="two columns of one name"),
    UploadCase("blank_column_names.csv", 422, "duplicate_columns", why="columns without names"),
    UploadCase("no_label_column.csv", 422, "missing_label", why="the label column is not there"),
    UploadCase("continuous_label.csv", 422, "too_many_classes", why="a continuous label (regression data)"),
    UploadCase("identifier_column.csv", 422, "too_many_categories", why="an identifier column as a feature"),
    UploadCase("mostly_numeric_column.csv", 422, "non_numeric_values", why="a word in a numeric column"),
    UploadCase("spreadsheet.xlsx", 415, "unsupported_file_type", why="an Excel file"),
    UploadCase("no_extension", 415, "unsupported_file_type", why="a file name without extension"),
    UploadCase("nested_struct.parquet", 422, "unsupported_column_type", why="a struct column"),
    UploadCase("nested_list.parquet", 422, "unsupported_column_type", why="a list column"),
    UploadCase("nested_map.parquet", 422, "unsupported_column_type", why="a map column"),
    UploadCase("nested_label.parquet", 422, "unsupported_column_type", why="a struct label"),
    UploadCase("zero_rows.parquet", 422, "empty_table", why="a Parquet file with no rows"),
    UploadCase("duplicate_columns.parquet", 422, "duplicate_columns", why="Parquet with two columns of one name"),
    UploadCase("truncated.parquet", 422, "unreadable_file", why="half a Parquet file"),
    UploadCase("csv_named_parquet.parquet", 422, "unreadable_file", why="a CSV named .parquet"),
    UploadCase("header_only.csv", 422, "validation_error", {"label": "   "}, why="a blank label field"),
    UploadCase("header_only.csv", 422, "validation_error", {"label": "x" * 300}, why="a 300-character label"),
    UploadCase(
        "one_class_label.csv",
        422,
        "missing_smiles_column",
        {"label": "outcome", "smiles_column": "smiles"},
        why="a SMILES column that is not there",
    ),
    UploadCase("too_few_rows.csv", 422, "too_few_rows", why="39 rows: every split needs 4 parts of 10"),
    UploadCase(
        "three_rows_of_one_class.csv",
        422,
        "too_few_minority_rows",
        why="3 rows of the rarer class: 4 parts each need both classes",
    ),
    UploadCase(
        "no_smiles_parses.csv",
        422,
        "no_valid_smiles",
        {"label": "outcome", "smiles_column": "smiles"},
        why="a SMILES column in which no SMILES parses",
    ),
    UploadCase(
        "few_smiles_parse.csv",
        422,
        "too_few_rows",
        {"label": "outcome", "smiles_column": "smiles"},
        why="90 rows, 30 with a valid SMILES: the rows prepare_dataset keeps are too few",
    ),
]

JOBS_CASES = [
    JobCase("negative_epochs.json", 422, "validation_error"),
    JobCase("zero_epochs.json", 422, "validation_error"),
    JobCase("huge_epochs.json", 422, "validation_error"),
    JobCase("tradeoff_nan.json", 422, "validation_error", why="NaN, not JSON but Python's json reads it"),
    JobCase("tradeoff_infinity.json", 422, "validation_error"),
    JobCase("tradeoff_nan_string.json", 422, "validation_error"),
    JobCase("tradeoff_overflow.json", 422, "validation_error", why="1e309 parses as inf"),
    JobCase("delta_zero.json", 422, "validation_error"),
    JobCase("keras_lambda_layer.json", 422, "validation_error", why="a Lambda layer would run user code"),
    JobCase("keras_custom_module.json", 422, "validation_error", why="a layer from another module"),
    JobCase("keras_batchnorm.json", 422, "validation_error", why="BatchNormalization mixes examples"),
    JobCase("keras_not_json.json", 422, "validation_error"),
    JobCase("keras_nested_10000.json", 422, "validation_error", why="would overflow the parser's stack"),
    JobCase("keras_nested_500.json", 422, "validation_error", why="would overflow the walk's stack"),
    JobCase("body_nested_100000.json", 400, "bad_request", why="the request body itself nested 100,000 deep"),
    JobCase("hidden_zero.json", 422, "validation_error"),
    JobCase("hidden_too_wide.json", 422, "validation_error"),
    JobCase("hidden_too_deep.json", 422, "validation_error"),
    JobCase("batch_size_zero.json", 422, "validation_error"),
    JobCase("dropout_one.json", 422, "validation_error"),
    JobCase("learning_rate_negative.json", 422, "validation_error"),
    JobCase("trials_over_limit.json", 422, "too_many_trials", why="5,000 trials (limit DPTUNE_MAX_TRIALS_PER_JOB)"),
    JobCase("trials_zero.json", 422, "validation_error"),
    JobCase("clip_range_inverted.json", 422, "validation_error"),
    JobCase("grid_step_tiny.json", 422, "validation_error"),
    JobCase("parallelism_zero.json", 422, "validation_error"),
    JobCase("seconds_negative.json", 422, "validation_error"),
    JobCase("split_fractions_over_one.json", 422, "validation_error"),
    JobCase("split_unknown_kind.json", 422, "validation_error"),
    JobCase("kmeans_missing_column.json", 422, "missing_column"),
    JobCase("seed_float.json", 422, "validation_error"),
    JobCase("seed_huge.json", 422, "validation_error"),
    JobCase("unknown_field.json", 422, "validation_error"),
    JobCase("unknown_dataset.json", 404, "dataset_not_found"),
    JobCase("target_above_max_epsilon.json", 422, "validation_error", why="GuaranteeSpec's cross-field check"),
    JobCase("max_epsilon_zero.json", 422, "validation_error"),
    JobCase("confirm_repeats_one.json", 422, "validation_error", why="a confirmation needs two seeds"),
    JobCase("unknown_proxy.json", 404, "dataset_not_found", why="tune_dataset_id names no data set"),
    JobCase("proxy_is_private.json", 422, "proxy_is_private", why="the proxy is the private data set itself"),
    JobCase("dataset_id_10000_chars.json", 422, "validation_error"),
    JobCase("body_array.json", 422, "validation_error"),
    JobCase("body_null.json", 422, "validation_error"),
    JobCase("body_string.json", 422, "validation_error"),
    JobCase("truncated_json.json", 422, "validation_error"),
    JobCase("invalid_utf8.json", 400, "bad_request"),
    JobCase("unknown_field.json", 422, "validation_error", content_type="text/plain", why="not sent as JSON"),
]
