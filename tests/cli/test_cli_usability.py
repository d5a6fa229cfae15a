"""The command's manners: --version, help that gives every option's default and direction, argument errors
before TensorFlow loads, and no library warnings on the user's terminal."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from app.cli import build_parser
from tests.service.conftest import tiny_frame

REPO = Path(__file__).resolve().parents[2]
# Runs main() as the console script does and reports, after it returned or exited, what it loaded.
_REPORTING_MAIN = (
    "import sys\nfrom app.cli import main\ntry:\n    code = main(sys.argv[1:])\nexcept SystemExit as exc:\n"
    "    code = exc.code\nprint('exit', code, 'tensorflow' in sys.modules, 'art' in sys.modules)\n"
)


def _user_env() -> dict[str, str]:
    """The environment of a user's terminal: none of the test run's own warning or TensorFlow settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DPTUNE_", "TF_CPP_", "PYTHONWARNINGS"))}


def _dptune(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO,
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version_comes_from_the_package_metadata() -> None:
    done = _dptune("--version", timeout=60)
    assert done.returncode == 0
    assert done.stdout == f"dptune {version('dptune')}\n"
    assert done.stderr == ""


def _parsers(parser: argparse.ArgumentParser, name: str = "dptune"):  # type: ignore[no-untyped-def]
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_has_help_with_its_default() -> None:
    for name, parser in _parsers(build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
                continue
            assert action.help and action.help.strip(), (name, action.dest)
            if action.default not in (None, False):
                flat = " ".join(text.split())
                assert f"(default: {action.default})" in flat, (name, action.dest)
                assert flat.count("(default") == flat.count("(default:"), (name, "a default said twice")
    tune = " ".join(dict(_parsers(build_parser()))["dptune tune"].format_help().split())
    assert "t = 1 means utility only, t = 0 privacy only (default: 0.5)" in tune
    assert "(default: 10.0)" in tune and "'none' asks for no guarantee" in tune


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tradeoff", "2"], "dptune tune: error: argument --tradeoff: must be in [0, 1], got 2"),
        (["--tradeoff", "nan"], "argument --tradeoff: must be in [0, 1], got nan"),
        (["--repeats", "0"], "argument --repeats: input should be greater than or equal to 1, got '0'"),
        (["--max-epsilon", "inf"], "argument --max-epsilon: input should be a finite number, got 'inf'"),
        (["--delta", "1"], "argument --delta: must be in (0, 1), got 1"),
        (["--epochs", "0"], "argument --epochs: input should be greater than or equal to 1, got '0'"),
        (["--max-clip", "0.05"], "dptune: error: search options: min_clip must be smaller than max_clip"),
        (["--trials", "none"], "dptune: error: search options: give a budget: trials, seconds, or both"),
    ],
)
def test_argument_errors_come_before_tensorflow_loads(args: list[str], message: str) -> None:
    """The data file does not even exist: the options are refused first, without loading TensorFlow or ART."""
    done = subprocess.run(
        [sys.executable, "-c", _REPORTING_MAIN, "tune", "absent.csv", "--label", "y", *args],
        cwd=REPO,
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip().splitlines()[-1] == "exit 2 False False", (done.stdout, done.stderr)
    assert message in done.stderr
    assert "Traceback" not in done.stderr and "Warning" not in done.stderr


@pytest.mark.slow
def test_no_library_warnings_on_the_terminal(tmp_path: Path) -> None:
    """A run that loads the engine (TensorFlow, TensorFlow Privacy, ART) and stops at its first check: the
    user's terminal shows dptune's own lines only, not ART's 'PyTorch not found' or TensorFlow's log lines."""
    data = tmp_path / "tiny.csv"
    tiny_frame(400).to_csv(data, index=False)
    done = _dptune("tune", str(data), "--label", "outcome", "--max-noise", "0.01")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert lines[-1].startswith("dptune: error: max_noise_below_budget: max_epsilon 10 needs a noise multiplier")
    assert [line for line in lines if not line.startswith(("prepared 400 rows", "dptune: error:"))] == []
    for quiet in (_dptune("--version", timeout=60), _dptune("tune", str(data), "--label", "y", "--tradeoff", "2")):
        assert "PyTorch" not in quiet.stderr and "WARNING" not in quiet.stderr.upper().replace("WARNINGS", "")
