"""Refresh docs/figures/dashboard-job.png and docs/figures/report.png: runs the browser test
(tests/dashboard/test_browser.py: a tiny real job through the dashboard, about 30 s on 2 cores), which saves
its two screenshots where DPTUNE_SCREENSHOTS says.

    python benchmarks/screenshots.py [--out docs/figures]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures", help="folder for the two PNGs")
    args = parser.parse_args()
    env = {**os.environ, "DPTUNE_SCREENSHOTS": str(args.out.resolve())}
    env.pop("DPTUNE_SKIP_BROWSER", None)
    test = "tests/dashboard/test_browser.py"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=REPO, env=env
    ).returncode


if __name__ == "__main__":
    sys.exit(main())
