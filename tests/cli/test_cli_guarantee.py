"""The CLI's guarantee options: bad combinations fail before any data is read, and --tune-on reads the private
data exactly once, for the final training, whose privacy.json says the search ran on the proxy."""

import json

import numpy as np
import pandas as pd
import pytest

from app import cli

# The smallest `dptune tune` that measures everything: 2 trials of an [8] network, 2 reference models, 2
# confirmation repeats (shared by the CLI tests that run a real tune).
TINY_TUNE_OPTIONS = [
    "--trials", "2", "--hidden", "8", "--learning-rate", "0.1", "--reference-models", "2",
    "--audit-reference-models", "2", "--confirm-repeats", "2",
]  # fmt: skip


def _table(path, seed: int, rows: int = 500):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=rows), rng.normal(size=rows)
    y = (a + b + 0.5 * rng.normal(size=rows) > 0).astype(int)
    pd.DataFrame({"a": a, "b": b, "y": y}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "options, message",
    [
        (["--target-epsilon", "3", "--max-epsilon", "2"], "exceeds max_epsilon"),
        (["--max-epsilon", "0"], "--max-epsilon"),
        (["--confirm-repeats", "1"], "--confirm-repeats"),
        (["--tune-on", "proxy.csv"], "--tune-on needs --save-model"),
    ],
)
def test_bad_guarantee_options_fail_before_reading_data(tmp_path, capsys, options, message) -> None:  # type: ignore[no-untyped-def]
    try:
        code = cli.main(["tune", str(tmp_path / "absent.csv"), "--label", "y", *options])
    except SystemExit as exc:  # a value out of its range is refused by argparse itself, while parsing
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "absent.csv" not in err


@pytest.mark.slow
def test_tune_on_a_proxy_reads_the_private_data_once_for_the_final_model(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import app.datasets

    private, proxy = _table(tmp_path / "private.csv", 1), _table(tmp_path / "proxy.csv", 2)
    real, reads = app.datasets.read_table, []

    def counting(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(path.name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(app.datasets, "read_table", counting)
    out, model_dir = tmp_path / "out.json", tmp_path / "model"
    code = cli.main(
        [
            "tune",
            str(private),
            "--label",
            "y",
            "--tune-on",
            str(proxy),
            "--save-model",
            str(model_dir),
            "--target-epsilon",
            "2",
            *TINY_TUNE_OPTIONS,
            "--epochs",
            "3",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    assert reads == ["proxy.csv", "private.csv"]  # the proxy for the search; the private data last, once
    statement = json.loads((model_dir / "privacy.json").read_text())
    result = json.loads(out.read_text())
    assert statement["tuned_on"] == "proxy" and "read once" in statement["tuning_cost"]
    assert 0.99 * 2 <= statement["epsilon"] <= 2.0
    assert result["final_model"]["epsilon"] == statement["epsilon"] == result["recommendation"]["training"]["epsilon"]
    assert result["recommendation"]["training"]["n"] == statement["n"]
    assert result["dataset"]["source"] == "proxy.csv" and result["dataset"]["private_source"] == "private.csv"
    assert (model_dir / "model.keras").stat().st_size > 0
