"""The built-in synthea-covid (v2) data, measured: marginals against the real Synthea sample, the best achievable
test AUC, the clusters and their label-only floor, and the study's situation with the study's models.

    python benchmarks/synthea_covid_data.py [--seeds 5] [--epsilon 3] [--clips 0.5 1 2 5] [--json FILE]

Per seed (data, split and training share it):
- clusters of the default k-means split: sizes, death rates, the population game's label-only floor (0.5 + TV/2);
- gradient boosting (scikit-learn's HistGradientBoostingClassifier, defaults) trained on 100,000 generated
  patients and scored on 50,000 others: the best test AUC to expect from the features (once, seed 0 .. seeds-1);
- the study's models (MLP 50/10, SGD for 10 epochs and Adam for 5) without DP: members and test AUC, and both
  games, the calibrated attack's K = 16;
- the same models with DP-SGD at `--epsilon` (noise calibrated by dptune's accountant), at the clip of `--clips`
  with the best validation utility: utility loss and the membership game's calibrated TPR at 1 % FPR.
Marginals are means over seeds of 200,000-patient draws, next to the sample's adults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "data" / "synthea-covid-sample"
MARGINALS = (
    "died",
    "pneumonia",
    "fever",
    "cough",
    "loss_of_taste",
    "fatigue",
    "dyspnea",
    "hypertension",
    "prediabetes",
    "diabetes",
    "obesity",
    "hyperlipidemia",
    "coronary_heart_disease",
    "stroke",
    "atrial_fibrillation",
    "cancer",
    "alzheimers",
    "copd",
    "social_isolation",
)
AGE_BANDS = [17, 40, 60, 70, 80, 110]
CALIBRATED = "rmia"


def marginals(frame: pd.DataFrame) -> dict[str, float]:
    out = {name: float(frame[name].mean()) for name in MARGINALS if name in frame}
    out["age_mean"], out["age_sd"] = float(frame["age"].mean()), float(frame["age"].std())
    out["male"] = float((frame["gender"] == "M").mean())
    bands = frame.groupby(pd.cut(frame["age"], AGE_BANDS), observed=False)["died"].mean()
    out.update({f"died_age_{int(b.left) + 1}_{int(b.right)}": float(v) for b, v in bands.items()})
    admitted = frame["pneumonia"] == 1
    out["died_if_admitted"], out["died_if_not_admitted"] = (
        float(frame.loc[admitted, "died"].mean()),
        float(frame.loc[~admitted, "died"].mean()),
    )
    for column in ("education", "employment", "race"):
        out.update({f"{column}={k}": float(v) for k, v in frame[column].value_counts(normalize=True).items()})
    return out


def sample_marginals() -> dict[str, float] | None:
    from app.datasets.synthea_import import import_synthea_export

    if not (SAMPLE / "patients.csv").exists():
        return None
    frame = import_synthea_export(SAMPLE / "patients.csv", SAMPLE / "conditions.csv")
    return marginals(frame[frame["age"] >= 18])


def best_achievable_auc(seed: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from app.datasets import generate_synthea_covid

    frame = generate_synthea_covid(seed=1000 + seed, n_patients=150_000)
    x = pd.get_dummies(frame.drop(columns=["died"]), dtype=float)
    y = frame["died"].to_numpy()
    model = HistGradientBoostingClassifier(random_state=seed).fit(x[:100_000], y[:100_000])
    return float(roc_auc_score(y[100_000:], model.predict_proba(x[100_000:])[:, 1]))


def attack_row(games) -> dict:  # type: ignore[no-untyped-def]
    calibrated = games.membership.attacks[CALIBRATED]
    return {
        "membership_attack_accuracy": games.membership.attack_accuracy,
        "calibrated_tpr_at_1pct_fpr": calibrated.tpr_at_1pct_fpr.model_dump(),
        "calibrated_tpr_at_0_1pct_fpr": calibrated.tpr_at_0_1pct_fpr.model_dump(),
        "calibrated_auc": calibrated.auc.value,
        "epsilon_lower_bound": games.membership.epsilon_lower_bound,
        "population_attack_accuracy": games.population.attack_accuracy if games.population else None,
        "population_reference_attack_accuracy": games.population.reference_attack_accuracy
        if games.population
        else None,
    }


def measure_seed(seed: int, epsilon: float, clips: list[float]) -> dict:
    from app.datasets import BUILTIN_DATASETS, prepare_dataset
    from app.datasets.splits import EXTERNAL, assign_split
    from app.datasets.tables import label_classes
    from app.tuning.accounting import dp_sgd_steps, noise_for_epsilon, sampling_rate
    from app.tuning.engine import run_baseline, run_trial
    from app.tuning.model_spec import ModelSpec
    from app.tuning.results import MeasurementSpec

    builtin = BUILTIN_DATASETS["synthea-covid"]
    frame = builtin.load(seed)
    split = assign_split(frame, builtin.default_split, label_classes(frame["died"])[1], seed=seed)
    external = split.part == EXTERNAL
    member_side = ~external & (split.part >= 0)
    clusters = {}
    for name, rows in (("member_side", member_side), ("external", external)):
        part = frame[rows]
        clusters[name] = {
            "rows": int(rows.sum()),
            "died": float(part["died"].mean()),
            "age_mean": float(part["age"].mean()),
            "admitted": float(part["pneumonia"].mean()),
            "education_higher": float((part["education"] == "higher").mean()),
            "full_time": float((part["employment"] == "full_time").mean()),
            "coverage_median": float(part["healthcare_coverage"].median()),
        }
    data, _ = prepare_dataset(frame, label=builtin.label, split=builtin.default_split, seed=seed)
    delta = 1.0 / (10 * len(data.y_members))
    measurement = MeasurementSpec(privacy_game="membership", reference_models=16, audit_reference_models=16)
    out: dict = {"split_sizes": data.split_sizes().model_dump(), "clusters": clusters}
    for name, spec in (
        ("sgd", ModelSpec(hidden=[50, 10], optimizer="sgd", epochs=10)),
        ("adam", ModelSpec(hidden=[50, 10], optimizer="adam", epochs=5)),
    ):
        started = time.perf_counter()
        baseline = run_baseline(data, spec, measurement, seed=seed, delta=delta)
        rate = sampling_rate(len(data.y_members), spec.batch_size)
        noise = noise_for_epsilon(
            epsilon=epsilon,
            sampling_rate=rate,
            steps=dp_sgd_steps(len(data.y_members), spec.batch_size, spec.epochs),
            delta=delta,
        )
        # The clip with the best validation utility at this epsilon (a cheap K), then that point audited at K = 16.
        screening = measurement.model_copy(update={"reference_models": 2})
        screened = {
            c: run_trial(data, spec, c, noise, delta=delta, measurement=screening, seed=seed).utility_validation
            for c in clips
        }
        clip = max(screened, key=lambda c: screened[c])
        private = run_trial(data, spec, clip, noise, delta=delta, measurement=measurement, seed=seed)
        out[name] = {
            "baseline": {
                "utility_members": baseline.utility_members,
                "utility_test": baseline.utility_test,
                "utility_external": baseline.utility_external,
                "gap": baseline.utility_members - baseline.utility_test,
                "logistic_regression_utility_test": baseline.logistic_regression_utility_test,
                "label_only_population": baseline.games.population and _label_only(data),
                **attack_row(baseline.games),
            },
            "dp": {
                "epsilon": private.epsilon,
                "clip": clip,
                "noise": noise,
                "validation_utility_by_clip": screened,
                "utility_test": private.utility_test,
                "utility_loss": baseline.utility_test - private.utility_test,
                **attack_row(private.games),
            },
            "seconds": round(time.perf_counter() - started, 1),
        }
    return out


def _label_only(data) -> float:  # type: ignore[no-untyped-def]
    from app.tuning.attacks.games import label_only_attack_accuracy

    return label_only_attack_accuracy(data.y_members, data.y_external, data.n_classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epsilon", type=float, default=3.0)
    parser.add_argument("--clips", type=float, nargs="+", default=[0.5, 1.0, 2.0, 5.0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from app.datasets import generate_synthea_covid
    from app.tuning.train import configure_threads

    configure_threads(1)
    started = time.perf_counter()
    seeds = list(range(args.seeds))
    generated = [marginals(generate_synthea_covid(seed=s, n_patients=200_000)) for s in seeds]
    result: dict = {
        "command": "python benchmarks/synthea_covid_data.py " + " ".join(sys.argv[1:]),
        "sample_adults": sample_marginals(),
        "generator": {k: float(np.mean([g.get(k, 0.0) for g in generated])) for k in generated[0]},
        "best_achievable_test_auc": [best_achievable_auc(s) for s in seeds],
        "seeds": {},
    }
    for seed in seeds:
        result["seeds"][str(seed)] = measure_seed(seed, args.epsilon, args.clips)
        print(json.dumps({seed: result["seeds"][str(seed)]}, default=str), flush=True)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
