"""The last mile: train the recommended configuration once more, with a seed from a secure source, and
publish it as a Keras model with privacy.json beside it. That single training is what the guarantee covers."""

from __future__ import annotations

import io
import json
import secrets
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from app.tuning.accounting import dp_sgd_steps, noise_for_epsilon, sampling_rate
from app.tuning.model_spec import ModelSpec
from app.tuning.prepared import PreparedData
from app.tuning.recommendation import TUNING_COST_PRIVATE, TUNING_COST_PROXY, TuneSource, training_config
from app.tuning.results import GuaranteeSpec, PrivacyStatement, TrainingConfig

if TYPE_CHECKING:  # train imports TensorFlow when a model is trained, not when this module is imported
    import tensorflow as tf

    from app.tuning.dense_loop import NoiseSource

MODEL_FILE = "model.keras"
STATEMENT_FILE = "privacy.json"
SEED_SOURCE = "secrets.randbits(31) (the operating system's CSPRNG)"


def final_training(
    recommended: TrainingConfig, guarantee: GuaranteeSpec, spec: ModelSpec, n: int, delta: float
) -> TrainingConfig:
    """The configuration for the data the final model trains on. Tuned on the same data, it is the
    recommendation's. Tuned on a proxy of another size, the sampling rate and steps change, so the noise is
    calibrated again: to target_epsilon, or up to max_epsilon's floor, never below the recommended noise."""
    noise = recommended.noise
    if n != recommended.n or delta != recommended.delta:
        rate, steps = sampling_rate(n, spec.batch_size), dp_sgd_steps(n, spec.batch_size, spec.epochs)
        if guarantee.target_epsilon is not None:
            noise = noise_for_epsilon(epsilon=guarantee.target_epsilon, sampling_rate=rate, steps=steps, delta=delta)
        elif guarantee.max_epsilon is not None:
            floor = noise_for_epsilon(epsilon=guarantee.max_epsilon, sampling_rate=rate, steps=steps, delta=delta)
            noise = max(noise, floor)
    return training_config(spec, recommended.clip, noise, n, delta)


def tf_privacy_statement(config: TrainingConfig) -> str:
    """TensorFlow Privacy's own statement of the same training (PLD accounting), for comparison."""
    if config.noise <= 0:
        return "No noise: TensorFlow Privacy states no guarantee for a noise multiplier of 0."
    from tensorflow_privacy.privacy.analysis import compute_dp_sgd_privacy_lib as lib

    statement: str = lib.compute_dp_sgd_privacy_statement(
        number_of_examples=config.n,
        batch_size=config.batch_size,
        num_epochs=config.epochs,
        noise_multiplier=config.noise,
        delta=config.delta,
        used_microbatching=False,
        accountant_type=lib.AccountantType.PLD,
    )
    return statement


def train_final(
    data: PreparedData,
    spec: ModelSpec,
    config: TrainingConfig,
    tuned_on: TuneSource,
    seed: int | None = None,
    noise_source: NoiseSource = "secure",
) -> tuple[tf.keras.Model, PrivacyStatement]:
    """Train once on the members with DP-SGD at `config`; returns a plain Keras model (probabilities out, no
    dptune classes needed to load it) and its privacy statement. `seed` is for tests only. The noise comes from
    the secure source by default (dense_loop.NOISE_SOURCES); a user's Keras model has only the fast one."""
    from app.tuning.dense_loop import NOISE_SOURCES
    from app.tuning.train import DPParams, export_model, train

    if len(data.y_members) != config.n:
        raise ValueError(f"the configuration is for {config.n} records, the data has {len(data.y_members)}")
    seed_source = SEED_SOURCE if seed is None else "given by the caller (tests only)"
    seed = secrets.randbits(31) if seed is None else seed
    dp = DPParams(config.clip, config.noise)
    trained = train(spec, data.x_members, data.y_members, data.n_classes, dp, seed, noise_source=noise_source)
    model = export_model(trained, spec, data.n_features)
    statement = PrivacyStatement(
        **config.model_dump(),
        tuning_cost=TUNING_COST_PROXY if tuned_on == "proxy" else TUNING_COST_PRIVATE,
        tuned_on=tuned_on,
        seed_source=seed_source,
        noise_source=trained.noise_source,
        rng=NOISE_SOURCES[trained.noise_source],
        tf_privacy_statement=tf_privacy_statement(config),
    )
    return model, statement


def save_final_model(directory: Path, model: tf.keras.Model, statement: PrivacyStatement) -> list[Path]:
    """model.keras and privacy.json in `directory` (created); returns both paths."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    model_path, statement_path = directory / MODEL_FILE, directory / STATEMENT_FILE
    model.save(model_path)
    statement_path.write_text(json.dumps(statement.model_dump(mode="json"), indent=2))
    return [model_path, statement_path]


def zip_final_model(files: Mapping[str, bytes]) -> bytes:
    """Both files (their bytes by name) as one zip, as GET /v1/jobs/{id}/model returns them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in (MODEL_FILE, STATEMENT_FILE):
            archive.writestr(name, files[name])
    return buffer.getvalue()
