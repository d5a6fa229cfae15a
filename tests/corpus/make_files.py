"""Writes the bad-input corpus's data set files into tests/corpus/datasets/ (committed; run again to rebuild
them identically): `python -m tests.corpus.make_files`. Each file is small and wrong in one way; the
expected answer for each is in tests/corpus/cases.py."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent / "datasets"
JOBS = Path(__file__).resolve().parent / "jobs"
GOOD_HEADER = "age,income,smoker,outcome\n"


def _good_rows(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        f"{rng.normal(50, 10):.1f},{rng.lognormal(10, 0.5):.2f},{rng.choice(['yes', 'no'])},{i % 2}" for i in range(n)
    ]


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def files() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    good = GOOD_HEADER + "\n".join(_good_rows(40)) + "\n"
    out: dict[str, bytes] = {}
    out["binary_garbage.csv"] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    out["ragged_long_rows.csv"] = (
        GOOD_HEADER + "\n".join(_good_rows(10)) + "\n51,1,no,1,extra,fields\n" + "\n".join(_good_rows(10, 1)) + "\n"
    ).encode()
    out["ragged_short_row.csv"] = (
        GOOD_HEADER + "\n".join(_good_rows(10)) + "\n51,1\n" + "\n".join(_good_rows(10, 1)) + "\n"
    ).encode()
    out["utf16_bom.csv"] = good.encode("utf-16")
    out["utf16le_no_bom.csv"] = good.encode("utf-16-le")
    out["latin1.csv"] = ("name,outcome\n" + "\n".join(f"Zoë{i},{i % 2}" for i in range(20)) + "\n").encode("latin-1")
    out["one_class_label.csv"] = (GOOD_HEADER + "\n".join(r[:-1] + "1" for r in _good_rows(30)) + "\n").encode()
    out["nan_inf_everywhere.csv"] = (
        "a,b,c,outcome\n"
        + "\n".join(
            f"{['nan', 'inf', '-inf', ''][i % 4]},{['inf', 'nan', '', '-inf'][i % 4]},inf,{i % 2}" for i in range(40)
        )
        + "\n"
    ).encode()
    out["nan_everywhere_label_too.csv"] = ("a,b,outcome\n" + "nan,nan,nan\n" * 30).encode()
    out["infinite_label.csv"] = (
        "a,b,outcome\n" + "\n".join(f"{i},{i * 2},{['inf', '-inf'][i % 2]}" for i in range(30)) + "\n"
    ).encode()
    out["overflowing_numbers.csv"] = (
        "a,b,outcome\n" + "\n".join(f"1e400,-1e999,{i % 2}" for i in range(30)) + "\n"
    ).encode()
    out["wide_10000_columns.csv"] = (
        ",".join(f"c{i}" for i in range(10_000))
        + ",outcome\n"
        + "\n".join(",".join(["1"] * 10_000) + f",{i % 2}" for i in range(3))
        + "\n"
    ).encode()
    out["unterminated_quote.csv"] = (GOOD_HEADER + '"51.0,1000,no,1\n' + "\n".join(_good_rows(10)) + "\n").encode()
    out["gzipped.csv"] = gzip.compress(good.encode(), mtime=0)
    out["json_document.csv"] = b'{"age": [50, 60], "outcome": [0, 1]}\n'
    out["nul_bytes_inside.csv"] = good.encode().replace(b"\n", b"\n\x00", 3)
    out["empty.csv"] = b""
    out["whitespace_only.csv"] = b"   \n\n\t\n  \n"
    out["header_only.csv"] = GOOD_HEADER.encode()
    out["duplicate_columns.csv"] = ("age,age,outcome\n" + "1,2,0\n3,4,1\n" * 10).encode()
    out["blank_column_names.csv"] = (",,outcome\n" + "1,2,0\n3,4,1\n" * 10).encode()
    out["no_label_column.csv"] = ("age,income\n" + "1,2\n3,4\n" * 10).encode()
    out["continuous_label.csv"] = (
        "age,outcome\n" + "\n".join(f"{i},{rng.random():.6f}" for i in range(300)) + "\n"
    ).encode()
    out["identifier_column.csv"] = (
        "patient,age,outcome\n" + "\n".join(f"P{rng.integers(10**9)},{i},{i % 2}" for i in range(300)) + "\n"
    ).encode()
    out["mostly_numeric_column.csv"] = (
        "age,outcome\n" + "\n".join(f"{'twelve' if i == 17 else i},{i % 2}" for i in range(100)) + "\n"
    ).encode()
    out["single_row.csv"] = (GOOD_HEADER + _good_rows(1)[0] + "\n").encode()
    out["spreadsheet.xlsx"] = b"PK\x03\x04" + rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
    out["no_extension"] = good.encode()
    labels = pa.array([0, 1] * 10)
    out["nested_struct.parquet"] = _parquet(
        pa.table({"person": pa.array([{"age": 50, "sex": "f"}] * 20), "outcome": labels})
    )
    out["nested_list.parquet"] = _parquet(pa.table({"visits": pa.array([[1, 2], [3]] * 10), "outcome": labels}))
    out["nested_map.parquet"] = _parquet(
        pa.table(
            {
                "codes": pa.array([[("a", 1)], [("b", 2)]] * 10, type=pa.map_(pa.string(), pa.int64())),
                "outcome": labels,
            }
        )
    )
    out["nested_label.parquet"] = _parquet(
        pa.table({"age": pa.array([50.0] * 20), "outcome": pa.array([{"died": 0}, {"died": 1}] * 10)})
    )
    out["zero_rows.parquet"] = _parquet(
        pa.table({"age": pa.array([], pa.float64()), "outcome": pa.array([], pa.int64())})
    )
    out["duplicate_columns.parquet"] = _parquet(
        pa.Table.from_arrays([pa.array([1, 2] * 10), pa.array([0, 1] * 10)], names=["outcome", "outcome"])
    )
    valid = _parquet(pa.table({"age": pa.array(np.arange(40.0)), "outcome": pa.array([0, 1] * 20)}))
    out["truncated.parquet"] = valid[: len(valid) // 2]
    out["csv_named_parquet.parquet"] = good.encode()
    # Valid tables that no split can use (app.datasets.features.check_splittable), and SMILES that do not parse.
    out["too_few_rows.csv"] = (GOOD_HEADER + "\n".join(_good_rows(39)) + "\n").encode()
    out["three_rows_of_one_class.csv"] = (
        GOOD_HEADER + "\n".join(r[:-1] + ("1" if i < 3 else "0") for i, r in enumerate(_good_rows(200))) + "\n"
    ).encode()
    out["no_smiles_parses.csv"] = (
        "smiles,outcome\n"
        + "\n".join(f"{['C1CC', 'not a molecule', 'Xx(', ''][i % 4]},{i % 2}" for i in range(60))
        + "\n"
    ).encode()
    out["few_smiles_parse.csv"] = (
        "smiles,outcome\n" + "\n".join(f"{'CCO' if i % 3 == 0 else 'C1CC'},{i % 2}" for i in range(90)) + "\n"
    ).encode()
    return out


def _job(**changes: object) -> bytes:
    body: dict[str, object] = {
        "dataset_id": "@DATASET@",
        "model": {"hidden": [8], "epochs": 1},
        "search": {"trials": 2},
    }
    body.update(changes)
    return json.dumps(body).encode()


def _keras(layers: list[dict[str, object]]) -> str:
    return json.dumps({"class_name": "Sequential", "config": {"name": "m", "layers": layers}})


def job_files() -> dict[str, bytes]:
    dense = {"class_name": "Dense", "config": {"units": 4, "activation": "relu"}}
    out: dict[str, bytes] = {
        "negative_epochs.json": _job(model={"epochs": -3}),
        "zero_epochs.json": _job(model={"epochs": 0}),
        "huge_epochs.json": _job(model={"epochs": 10**9}),
        "tradeoff_nan.json": b'{"dataset_id": "@DATASET@", "tradeoff": NaN}',
        "tradeoff_infinity.json": b'{"dataset_id": "@DATASET@", "tradeoff": -Infinity}',
        "tradeoff_nan_string.json": _job(tradeoff="NaN"),
        "tradeoff_overflow.json": b'{"dataset_id": "@DATASET@", "tradeoff": 1e309}',
        "delta_zero.json": _job(delta=0),
        "keras_lambda_layer.json": _job(
            model={
                "keras_json": _keras(
                    [dense, {"class_name": "Lambda", "config": {"function": ["4wEAAAAAAAAA", None, None]}}]
                )
            }
        ),
        "keras_custom_module.json": _job(
            model={"keras_json": _keras([{"class_name": "Dense", "module": "evil.layers", "config": {"units": 4}}])}
        ),
        "keras_batchnorm.json": _job(
            model={"keras_json": _keras([dense, {"class_name": "BatchNormalization", "config": {}}])}
        ),
        "keras_not_json.json": _job(model={"keras_json": "Sequential(Dense(4))"}),
        "keras_nested_10000.json": _job(model={"keras_json": "[" * 10_000 + "]" * 10_000}),
        "keras_nested_500.json": _job(
            model={"keras_json": '{"class_name": "Sequential", "config": ' + "[" * 500 + "]" * 500 + "}"}
        ),
        "body_nested_100000.json": b"[" * 100_000 + b"]" * 100_000,
        "hidden_zero.json": _job(model={"hidden": [0]}),
        "hidden_too_wide.json": _job(model={"hidden": [100_000]}),
        "hidden_too_deep.json": _job(model={"hidden": [4] * 17}),
        "batch_size_zero.json": _job(model={"batch_size": 0}),
        "dropout_one.json": _job(model={"dropout": 1.0}),
        "learning_rate_negative.json": _job(model={"learning_rate": -0.1}),
        "trials_over_limit.json": _job(search={"trials": 5000}),
        "trials_zero.json": _job(search={"trials": 0}),
        "clip_range_inverted.json": _job(search={"min_clip": 5, "max_clip": 1}),
        "grid_step_tiny.json": _job(search={"method": "grid", "grid_step": 1e-9}),
        "parallelism_zero.json": _job(search={"parallelism": 0}),
        "seconds_negative.json": _job(search={"trials": None, "seconds": -5}),
        "split_fractions_over_one.json": _job(
            split={"kind": "random", "members": 0.7, "holdout": 0.3, "validation": 0.15, "test": 0.15}
        ),
        "split_unknown_kind.json": _job(split={"kind": "by-moon-phase"}),
        "kmeans_missing_column.json": _job(split={"kind": "kmeans", "columns": ["no_such_column"]}),
        "seed_float.json": _job(seed=1.5),
        "seed_huge.json": _job(seed=2**40),
        "unknown_field.json": _job(priority="urgent"),
        "unknown_dataset.json": _job(dataset_id="00000000-0000-0000-0000-000000000000"),
        "dataset_id_10000_chars.json": _job(dataset_id="d" * 10_000),
        "body_array.json": b'["@DATASET@"]',
        "body_null.json": b"null",
        "body_string.json": b'"@DATASET@"',
        "truncated_json.json": b'{"dataset_id": "@DATASET@", "model": {"epochs": 1',
        "invalid_utf8.json": b'{"dataset_id": "@DATASET@", "name": "\xff\xfe\xfd"}',
    }
    return out


def main() -> None:
    HERE.mkdir(exist_ok=True)
    JOBS.mkdir(exist_ok=True)
    for name, data in files().items():
        (HERE / name).write_bytes(data)
    for name, data in job_files().items():
        (JOBS / name).write_bytes(data)
    print(f"wrote {len(files())} files to {HERE} and {len(job_files())} to {JOBS}")


if __name__ == "__main__":
    main()
