"""Final models: model.keras and privacy.json, stored under the keys models/<job id>/<file> (app.blobs: in the
data folder, or in the database).

A worker writes a model to a temp folder in its data folder (models/.tmp-<job id>-<random>), then stores both
files in one transaction, replacing an older model (a re-run after a lost lease). The API serves a model only
once the job's final_model is set, which the worker writes after storing it. A data set's deletion removes the
models (and any temp folder a crash left in this data folder) of every job that read it.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from app.blobs import blob_store
from app.datasets.storage import stored_path
from app.db import Database, after_commit
from app.settings import Settings
from app.tuning.final_model import MODEL_FILE, STATEMENT_FILE

MODELS_FOLDER = "models"
MODEL_FILES = (MODEL_FILE, STATEMENT_FILE)


def model_key(job_id: str, name: str) -> str:
    return f"{MODELS_FOLDER}/{job_id}/{name}"


def model_dir(settings: Settings, job_id: str) -> Path:
    """Where the folder store keeps a job's model files."""
    return stored_path(settings, f"{MODELS_FOLDER}/{job_id}")


def publish_model(database: Database, job_id: str, write: Callable[[Path], object]) -> None:
    """`write(folder)` into a temp folder, then store the model files it wrote in one transaction."""
    settings = database.settings
    temp = stored_path(settings, f"{MODELS_FOLDER}/.tmp-{job_id}-{uuid.uuid4().hex}")
    temp.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = blob_store(settings)
    try:
        write(temp)
        with database.transaction() as session:
            for name in MODEL_FILES:
                if (temp / name).is_file():
                    store.put(session, model_key(job_id, name), temp / name)
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # what was not moved into place


def read_model_files(session: Session, settings: Settings, job_id: str) -> dict[str, bytes] | None:
    """Both files' bytes, or None when either is missing."""
    store = blob_store(settings)
    files = {name: store.read(session, model_key(job_id, name)) for name in MODEL_FILES}
    if any(data is None for data in files.values()):
        return None
    return {name: data for name, data in files.items() if data is not None}


def remove_models(session: Session, settings: Settings, job_ids: list[str]) -> None:
    """These jobs' final models with `session`'s commit; after it, their folders and the temp folders an
    interrupted write left in this data folder."""
    blob_store(settings).delete(session, [model_key(job_id, name) for job_id in job_ids for name in MODEL_FILES])
    folder = stored_path(settings, MODELS_FOLDER)

    def remove_folders() -> None:
        for job_id in job_ids:
            shutil.rmtree(model_dir(settings, job_id), ignore_errors=True)
            for temp in folder.glob(f".tmp-{job_id}-*"):
                shutil.rmtree(temp, ignore_errors=True)

    after_commit(session, remove_folders)
