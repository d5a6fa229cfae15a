"""`dptune report RESULT.json` and `dptune tune --report FILE`: the report of a tiny real run, and one clear line
with exit 2 for a file that is not a result."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import cli
from tests.cli.test_cli_guarantee import TINY_TUNE_OPTIONS, _table


@pytest.mark.slow
def test_tune_writes_the_report_and_report_redraws_it_from_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, result, report = _table(tmp_path / "tiny.csv", 0, rows=400), tmp_path / "out.json", tmp_path / "r.html"
    code = cli.main(
        [
            "tune",
            str(data),
            "--label",
            "y",
            *TINY_TUNE_OPTIONS,
            "--epochs",
            "3",
            "--json",
            str(result),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    page = report.read_text()
    assert len(re.findall(r"<img ", page)) == 6 and "not drawn" not in page
    assert "http://" not in page and "https://" not in page
    assert "bound is not in this result" not in page  # a real run records the accountant's TPR bounds
    again = tmp_path / "again.html"
    assert cli.main(["report", str(result), "-o", str(again)]) == 0
    redrawn = again.read_text()
    assert len(re.findall(r"<img ", redrawn)) == 6
    # The same result gives the same page (the PNGs carry no timestamp).
    assert redrawn == page
    assert f"wrote {again}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "cannot read"),
        ("not json", "is not a `dptune tune --json` result"),
        ('{"mode": "budget"}', "is not a `dptune tune --json` result"),
    ],
)
def test_a_bad_result_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "result.json"
    if content is not None:
        path.write_text(content)
    assert cli.main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dptune: error:") and message in err[0]
    assert not (tmp_path / "r.html").exists()
