"""The API process starts without the engine's heavy libraries: they load in the worker, or on first use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# TensorFlow and RDKit are needed only to train and to read SMILES; scikit-learn, matplotlib and scipy (via
# dp_accounting) only for a k-means split, a report and the accountant.
NOT_AT_START = ("tensorflow", "rdkit", "sklearn", "matplotlib", "scipy", "dp_accounting")

_PROBE = """
import json, sys
from pathlib import Path

def loaded():
    return sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[2].split(",")))

import app.main
after_import = loaded()
from fastapi.testclient import TestClient
from app.settings import Settings
app_ = app.main.create_app(Settings(data_dir=Path(sys.argv[1])))
after_create = loaded()
with TestClient(app_) as client:  # the lifespan too: schema upgrade, temp-file sweep, metrics
    health = client.get("/v1/health").status_code
print(json.dumps({"import": after_import, "create_app": after_create, "started": loaded(), "health": health}))
"""


def test_the_api_loads_no_tensorflow_rdkit_sklearn_matplotlib_or_scipy(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DPTUNE_")}
    env["PYTHONPATH"] = str(REPO)  # this checkout's code
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "data"), ",".join(NOT_AT_START)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["health"] == 200
    # `python -X importtime -c "import app.main"` shows which app module pulls in a library listed here.
    assert seen == {"import": [], "create_app": [], "started": [], "health": 200}
