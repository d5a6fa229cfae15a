"""The one settings object of the service, read from DPTUNE_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("dptune-data")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DPTUNE_", extra="ignore")

    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR, description="Uploaded data sets, temp files and the SQLite file."
    )
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite at DATA_DIR/dptune.db.")
    storage: Literal["auto", "folder", "database"] = Field(
        default="auto",
        description="Where data set and model files live: the data folder, or the database (workers then need "
        "no shared folder). auto: the database on PostgreSQL, the folder on SQLite.",
    )
    sqlite_busy_timeout_ms: int = Field(default=15_000, ge=0, description="How long SQLite waits for the write lock.")
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1, description="Largest data set file accepted.")
    max_rows: int = Field(default=1_000_000, ge=1, description="Most data rows an uploaded table may have.")
    max_columns: int = Field(default=4096, ge=2, description="Most columns an uploaded table may have.")
    max_trials_per_job: int = Field(
        default=1000,
        ge=1,
        description="Most trials one job may ask for; a time-only search stops at this many trials too.",
    )
    max_active_jobs_per_owner: int = Field(default=20, ge=1, description="Queued or running jobs one owner may have.")
    max_json_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="Largest request body other than a data set upload."
    )
    lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A claimed unit of work whose lease is this old "
        "without a heartbeat is run again by another worker.",
    )
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0, description="How long an idle worker waits before looking again.")
    stop_grace_seconds: float = Field(
        default=20.0,
        ge=0,
        description="After SIGTERM a worker finishes its current "
        "unit for this long, then releases it to another worker.",
    )
    tf_threads: int | None = Field(default=None, ge=1, description="TensorFlow threads per worker process.")
    worker_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="How much lower than the API's the OS priority of the worker `dptune serve` starts is (added "
        "to its nice value), so that training yields the CPU to API requests; 0 keeps the API's priority.",
    )
    prepared_cache_size: int = Field(default=2, ge=0, description="Prepared data sets a worker keeps in memory.")
    worker_id: str = Field(default="", description="Name of this worker in the trials table; default host-pid.")

    @model_validator(mode="after")
    def _lease_outlives_heartbeat(self) -> Settings:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("heartbeat_seconds must be shorter than lease_seconds")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'dptune.db').resolve()}"

    @property
    def stores_files_in_database(self) -> bool:
        if self.storage == "auto":
            return not self.resolved_database_url.startswith("sqlite")
        return self.storage == "database"

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def local_key_path(self) -> Path:
        """Where `dptune serve` on localhost keeps the API key it created on its first start (mode 0600)."""
        return self.data_dir / "local-api-key"

    @property
    def tmp_dir(self) -> Path:
        """Uploads land here first, so a half-received or invalid file never sits next to the real ones."""
        return self.data_dir / "tmp"

    def ensure_dirs(self) -> None:
        for path in (self.data_dir, self.datasets_dir, self.tmp_dir):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
