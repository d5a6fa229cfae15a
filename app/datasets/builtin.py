"""Built-in data sets. `synthea-covid`: synthetic COVID-19 patients in the study's biased setting (6.2.1, 6.3.1).

The generator follows the structure of Synthea's COVID-19 module, calibrated on a real Synthea export
(../shared/data/synthea-covid-sample, 414 COVID-19 patients); docs/datasets.md lists every matched marginal.
It needs no files at run time.

Why it leaks without overfitting (the study's situation): a latent socio-economic class drives education,
employment and coverage, which is what k-means on those columns separates. The lower class is older and
carries more comorbidity, so its patients are hospitalised and die more often. The target model generalises
to both clusters (same risk function), but its output distribution differs between them, and the attacker,
whose nonmembers are the other cluster, reads membership off that shift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.datasets.splits import KMeansSplit, SplitSpec

# The study had 2,420 patients (1,384 in cluster 0 + 1,036 in cluster 1) and trained on 1,088. With the
# five-way split, the larger cluster (about 57 %: 3,385-3,445 rows for seeds 0-4) is divided 35/35/15/15, so
# 6,000 patients give members >= 1,088 (the study's training-set size; 1,185-1,206 here) and validation and
# test at least 20 deaths each (26-31), for the baseline gate. The generator's rates are unchanged; only the
# number of patients drawn.
SYNTHEA_COVID_PATIENTS = 6000
SYMPTOMS = (
    "fever", "cough", "loss_of_taste", "fatigue", "sputum", "dyspnea", "wheezing", "muscle_pain", "joint_pain",
    "sore_throat", "chills", "headache", "nasal_congestion", "nausea", "vomiting", "diarrhea",
)
SEVERE = (
    "pneumonia", "hypoxemia", "respiratory_distress", "respiratory_failure", "ards", "sepsis", "septic_shock",
    "pulmonary_embolism",
)
COMORBIDITIES = ("hypertension", "prediabetes", "diabetes", "obesity")
SOCIAL = ("social_isolation",)
DEMOGRAPHIC = ("gender", "race", "ethnicity")
SOCIO_ECONOMIC = ("education", "employment", "healthcare_coverage")
SYNTHEA_COVID_COLUMNS = (
    "age", *DEMOGRAPHIC, "education", "employment", "healthcare_coverage", "healthcare_expenses",
    *SOCIAL, *COMORBIDITIES, *SYMPTOMS, *SEVERE, "died",
)

# Share of the socio-economically advantaged class (the study's larger cluster: 1,384 of 2,420).
P_HIGH_CLASS = 0.60
EDUCATION_LEVELS = ("primary", "high_school", "higher")
EDUCATION_P = {True: (0.02, 0.06, 0.92), False: (0.35, 0.60, 0.05)}
EMPLOYMENT_LEVELS = ("full_time", "part_time", "unemployed", "not_in_labor_force")
EMPLOYMENT_P = {True: (0.70, 0.18, 0.04, 0.08), False: (0.45, 0.27, 0.17, 0.11)}
RACES = ("white", "black", "asian", "other", "native")  # Synthea's race values
RACE_P = {True: (0.80, 0.07, 0.08, 0.04, 0.01), False: (0.74, 0.12, 0.05, 0.07, 0.02)}
P_HISPANIC = {True: 0.08, False: 0.14}
# Adults (the study's cluster columns, education and employment, are undefined for children).
AGE_MEAN = {True: 42.0, False: 60.0}
AGE_SD = 16.0
# Mild symptoms: the real sample's share among its 414 COVID-19 patients. Pairs Synthea always records
# together (dyspnea + wheezing, muscle + joint pain, nausea + vomiting) are drawn together here too.
MILD_PREVALENCE = {
    # fever: 0.79 here, plus half of the hospitalised (below), gives the sample's 341 / 414 = 0.82 overall
    "fever": 0.79, "cough": 264 / 414, "loss_of_taste": 184 / 414, "fatigue": 154 / 414,
    "sputum": 126 / 414, "dyspnea": 79 / 414, "muscle_pain": 58 / 414, "sore_throat": 55 / 414,
    "chills": 44 / 414, "headache": 39 / 414, "nasal_congestion": 21 / 414, "nausea": 15 / 414,
    "diarrhea": 16 / 414,
}
PAIRED = {"wheezing": "dyspnea", "joint_pain": "muscle_pain", "vomiting": "nausea"}


def _logistic(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _choice(rng: np.random.Generator, levels: tuple[str, ...], probs: dict[bool, tuple[float, ...]],
            high: np.ndarray) -> np.ndarray:
    out = np.empty(len(high), dtype=object)
    for flag in (True, False):
        rows = high == flag
        out[rows] = rng.choice(levels, size=int(rows.sum()), p=probs[flag])
    return out


def generate_synthea_covid(seed: int = 0, n_patients: int = SYNTHEA_COVID_PATIENTS) -> pd.DataFrame:
    """Synthetic adult COVID-19 patients, one row each; deterministic for a seed. Label: `died` (0/1)."""
    rng = np.random.default_rng(seed)
    n = n_patients
    high = rng.random(n) < P_HIGH_CLASS
    low = (~high).astype(np.float64)
    age = np.clip(np.where(high, AGE_MEAN[True], AGE_MEAN[False]) + AGE_SD * rng.standard_normal(n), 18, 100)
    age = np.round(age, 1)
    gender = np.where(rng.random(n) < 0.5, "F", "M").astype(object)
    race = _choice(rng, RACES, RACE_P, high)
    ethnicity = np.where(rng.random(n) < np.where(high, P_HISPANIC[True], P_HISPANIC[False]), "hispanic",
                         "nonhispanic").astype(object)
    education = _choice(rng, EDUCATION_LEVELS, EDUCATION_P, high)
    employment = _choice(rng, EMPLOYMENT_LEVELS, EMPLOYMENT_P, high)
    # Lifetime coverage grows with age (r = 0.67 in the sample) and with means; heavy-tailed like the sample.
    log_coverage = 12.77 + 0.03 * (age - 49.4) + 1.0 * (high - 0.6) + 1.05 * rng.standard_normal(n)
    coverage = np.round(np.exp(log_coverage), 2)
    # The sample's 2021 Synthea build exports expenses as 0; later builds fill them. Not calibrated.
    expenses = np.round(np.exp(10.8 + 0.02 * (age - 49.4) - 0.3 * (high - 0.6) + 0.8 * rng.standard_normal(n)), 2)
    social_isolation = (rng.random(n) < _logistic(-0.2 + 0.5 * low)).astype(np.int64)

    obesity = rng.random(n) < _logistic(-0.35 + 0.5 * low)
    hypertension = rng.random(n) < _logistic(-3.3 + 0.045 * age + 0.5 * low)
    prediabetes = rng.random(n) < _logistic(-1.75 + 0.015 * age + 0.8 * obesity)
    diabetes = rng.random(n) < _logistic(-5.9 + 0.04 * age + 1.0 * obesity + 0.4 * low)
    burden = obesity + hypertension + prediabetes + 1.5 * diabetes

    # Synthea's severe path: pneumonia, hypoxemia and respiratory distress together (hospitalisation),
    # then respiratory failure (ICU) and its complications; deaths come almost only from there.
    hospital = rng.random(n) < _logistic(-4.8 + 0.06 * age + 0.45 * burden + 0.5 * low)
    icu = hospital & (rng.random(n) < _logistic(-2.2 + 0.045 * age + 0.3 * burden))
    sepsis = icu & (rng.random(n) < 0.75)
    ards = icu & (rng.random(n) < 0.35)
    septic_shock = sepsis & (rng.random(n) < 0.4)
    embolism = hospital & (rng.random(n) < np.where(icu, 0.45, 0.1))
    # In the sample, ARDS and septic shock occur only in patients who die (50 % and 40 % of the deaths).
    death_logit = np.where(icu, -7.5 + 0.04 * age + 8.5 * (ards | septic_shock), -12.0 + 0.06 * age)
    died = rng.random(n) < _logistic(death_logit)

    data: dict[str, object] = {
        "age": age, "gender": gender, "race": race, "ethnicity": ethnicity, "education": education,
        "employment": employment, "healthcare_coverage": coverage, "healthcare_expenses": expenses,
        "social_isolation": social_isolation,
        "hypertension": hypertension, "prediabetes": prediabetes, "diabetes": diabetes, "obesity": obesity,
    }
    mild = {name: rng.random(n) < p for name, p in MILD_PREVALENCE.items()}
    # Severe cases run a fever more often (95 % of the sample's deaths, 82 % of survivors).
    mild["fever"] = mild["fever"] | (hospital & (rng.random(n) < 0.5))
    for name in SYMPTOMS:
        data[name] = mild[PAIRED.get(name, name)]
    severe = {
        "pneumonia": hospital, "hypoxemia": hospital, "respiratory_distress": hospital, "respiratory_failure": icu,
        "ards": ards, "sepsis": sepsis, "septic_shock": septic_shock, "pulmonary_embolism": embolism,
    }
    data.update(severe)
    data["died"] = died
    frame = pd.DataFrame(data)
    flags = [*SOCIAL, *COMORBIDITIES, *SYMPTOMS, *SEVERE, "died"]
    frame[flags] = frame[flags].astype(np.int64)
    for column in ("gender", "race", "ethnicity", "education", "employment"):
        frame[column] = frame[column].astype(str)
    return frame[list(SYNTHEA_COVID_COLUMNS)]


@dataclass(frozen=True)
class BuiltinDataset:
    """A data set dptune generates itself, with the label and split the study used on it."""

    name: str
    description: str
    label: str
    default_split: SplitSpec
    load: Callable[[int], pd.DataFrame]
    smiles_column: str | None = None


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "synthea-covid": BuiltinDataset(
        name="synthea-covid",
        description=(
            f"{SYNTHEA_COVID_PATIENTS:,} synthetic adult COVID-19 patients (Synthea-like, calibrated on a real Synthea export); "
            "label 'died'; biased split by k-means on demographic and socio-economic columns, as in the study"
        ),
        label="died",
        default_split=KMeansSplit(columns=[*DEMOGRAPHIC, *SOCIO_ECONOMIC]),
        load=lambda seed: generate_synthea_covid(seed),
    ),
}
