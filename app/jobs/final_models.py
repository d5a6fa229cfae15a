"""Final models on disk: models/<job id>/ in the data folder holds model.keras and privacy.json.

A model is written to a temp folder beside it (models/.tmp-<job id>-<random>) and renamed into place, so a
crash never leaves half a model where the API serves it. A data set's deletion removes the models (and any
temp folder a crash left) of every job that read it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from app.datasets.storage import stored_path
from app.settings import Settings

MODELS_FOLDER = "models"


def model_dir(settings: Settings, job_id: str) -> Path:
    return stored_path(settings, f"{MODELS_FOLDER}/{job_id}")


def publish_model(settings: Settings, job_id: str, write: Callable[[Path], object]) -> Path:
    """`write(folder)` into a temp folder, then rename it to models/<job id> (replacing an older one, as a
    re-run after a lost lease does)."""
    final = model_dir(settings, job_id)
    temp = stored_path(settings, f"{MODELS_FOLDER}/.tmp-{job_id}-{uuid.uuid4().hex}")
    temp.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        write(temp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(temp, final)
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # nothing left once renamed
    return final


def remove_models(settings: Settings, job_ids: list[str]) -> None:
    """The final models of these jobs, and temp folders an interrupted write left."""
    folder = stored_path(settings, MODELS_FOLDER)
    for job_id in job_ids:
        shutil.rmtree(model_dir(settings, job_id), ignore_errors=True)
        for temp in folder.glob(f".tmp-{job_id}-*"):
            shutil.rmtree(temp, ignore_errors=True)
