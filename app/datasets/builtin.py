"""Built-in data sets. `synthea-covid` (v2): synthetic adult COVID-19 patients for the study's setting (6.2.1, 6.3.1).

The generator follows Synthea's COVID-19 module, with every marginal taken from a real Synthea export
(../shared/data/synthea-covid-sample: 414 COVID-19 patients, 317 adults); docs/datasets.md lists each matched
figure. It needs no files at run time.

What v2 is built on (each a fact of the sample, docs/datasets.md):
- Death is a noisy function of age, sex, comorbidities and the admission findings, and nothing else. The
  terminal complications (respiratory failure, ARDS, sepsis, septic shock, pulmonary embolism) are not
  columns: in the sample they occur almost only in patients who die, so they decided the label alone.
- Socio-economics (education, employment, coverage, race, ethnicity) do not act on health. In the sample,
  education and employment levels have the same age (47-51), comorbidity and death rates, so the k-means
  clusters on those columns differ in who the patients are, and die at rates that follow from their own
  ages and conditions, not from a hidden class.
- Rare conditions (coronary heart disease, stroke, atrial fibrillation, cancer, Alzheimer's, COPD: 1-4 %
  each in the sample) carry high risk and make small atypical subgroups: the records a model memorises.
- Every other condition active at onset in at least 3 of the sample's adults is a column too
  (BACKGROUND_CONDITIONS), at the sample's share: like a real history, it makes most records unique.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from app.datasets.splits import KMeansSplit, SplitSpec

# The five-part split divides the larger k-means cluster (about 56 %) 35/35/15/15: 6,000 patients give
# members >= 1,088 (the study's training-set size) and at least 20 deaths in validation and in test (the
# baseline gate). docs/datasets.md gives the sizes for seeds 0-4.
SYNTHEA_COVID_PATIENTS = 6000
SYMPTOMS = (
    "fever",
    "cough",
    "loss_of_taste",
    "fatigue",
    "sputum",
    "dyspnea",
    "wheezing",
    "muscle_pain",
    "joint_pain",
    "sore_throat",
    "chills",
    "headache",
    "nasal_congestion",
    "nausea",
    "vomiting",
    "diarrhea",
)
# Findings at admission, recorded together by Synthea (75 / 74 / 74 of the sample's 414).
ADMISSION = ("pneumonia", "hypoxemia", "respiratory_distress")
COMORBIDITIES = ("hypertension", "prediabetes", "diabetes", "obesity", "hyperlipidemia")
# Rare conditions active at onset: (share of the sample's 317 adults, death log-odds ratio at equal age).
# The shares are the sample's counts (11 coronary heart disease, 10 stroke, 9 atrial fibrillation, 14 cancer,
# 6 Alzheimer's, 4 COPD; 4, 3, 2, 2, 3, 1 of them died); the odds ratios (2-4) are chosen near published COVID-19 cohort
# figures, since 1-4 deaths per condition cannot estimate them.
RARE_CONDITIONS: dict[str, tuple[float, float]] = {
    "coronary_heart_disease": (0.035, 0.9),
    "stroke": (0.032, 0.9),
    "atrial_fibrillation": (0.028, 0.7),
    "cancer": (0.044, 1.0),
    "alzheimers": (0.019, 1.4),
    "copd": (0.013, 1.2),
}
# Other conditions active at onset in the sample's 317 adults: (column, SNOMED code, adults with it, their mean
# age). They do not act on COVID-19 death here (the sample's deaths among them follow their ages). Like any
# real record's history, they make most patients' combination of findings unique: the detail a model can
# memorise about one patient.
BACKGROUND_CONDITIONS: tuple[tuple[str, str, int, float], ...] = (
    ("refugee", "446654005", 184, 57.1),
    ("stress", "73595000", 182, 50.0),
    ("limited_social_contact", "423315002", 141, 52.1),
    ("anemia", "271737000", 108, 57.0),
    ("criminal_record", "266948004", 74, 60.0),
    ("chronic_sinusitis", "40055000", 72, 59.3),
    ("chronic_migraine", "124171000119105", 67, 56.3),
    ("drug_overdose", "55680006", 66, 57.3),
    ("chronic_pain", "82423001", 65, 55.6),
    ("chronic_low_back_pain", "278860009", 64, 45.7),
    ("intimate_partner_abuse", "706893006", 65, 53.4),
    ("impacted_molars", "196416002", 63, 55.6),
    ("risk_activity", "160968000", 62, 47.2),
    ("chronic_neck_pain", "1121000119107", 44, 44.0),
    ("osteoarthritis_knee", "239873007", 27, 63.5),
    ("osteoporosis", "64859006", 17, 76.4),
    ("violence_in_environment", "424393004", 17, 44.3),
    ("metabolic_syndrome", "237602007", 16, 62.3),
    ("hypertriglyceridemia", "302870006", 16, 62.3),
    ("history_of_appendectomy", "428251008", 13, 48.7),
    ("fibromyalgia", "203082005", 13, 44.3),
    ("hyperglycemia", "80394007", 12, 68.3),
    ("alcohol_misuse", "10939881000119104", 12, 45.7),
    ("history_of_cardiac_arrest", "429007001", 11, 55.1),
    ("osteoarthritis_hip", "239872002", 10, 68.7),
    ("drug_misuse", "361055000", 9, 31.5),
    ("osteoarthritis_hand", "201834006", 8, 72.3),
    ("diabetic_neuropathy", "368581000119106", 8, 61.1),
    ("seizure_disorder", "128613002", 6, 53.5),
    ("severe_anxiety", "80583007", 6, 48.2),
    ("polyp_of_colon", "68496003", 6, 68.5),
    ("diabetic_retinopathy", "422034002", 6, 66.4),
    ("gout", "90560007", 3, 69.4),
    ("recurrent_uti", "197927001", 3, 66.0),
    ("opioid_abuse", "5602001", 3, 47.3),
)
SAMPLE_ADULTS = 317
BACKGROUND = tuple(name for name, *_ in BACKGROUND_CONDITIONS)
SOCIAL = ("social_isolation",)
DEMOGRAPHIC = ("gender", "race", "ethnicity")
SOCIO_ECONOMIC = ("education", "employment", "healthcare_coverage")
SYNTHEA_COVID_COLUMNS = (
    "age",
    *DEMOGRAPHIC,
    "education",
    "employment",
    "healthcare_coverage",
    "healthcare_expenses",
    *SOCIAL,
    *COMORBIDITIES,
    *RARE_CONDITIONS,
    *BACKGROUND,
    *SYMPTOMS,
    *ADMISSION,
    "died",
)

EDUCATION_LEVELS = ("primary", "high_school", "higher")
EMPLOYMENT_LEVELS = ("full_time", "part_time", "unemployed", "not_in_labor_force")
RACES = ("white", "black", "asian", "other", "native")  # Synthea's race values
# Adults: the sample's 317 have age mean 49.3, sd 18.7.
AGE_MEAN, AGE_SD = 49.3, 18.7
# Mild symptoms: the share among the sample's 414 COVID-19 patients. Pairs Synthea always records together
# (dyspnea + wheezing, muscle + joint pain, nausea + vomiting) are drawn together here too.
MILD_PREVALENCE = {
    "fever": 341 / 414,
    "cough": 264 / 414,
    "loss_of_taste": 184 / 414,
    "fatigue": 154 / 414,
    "sputum": 126 / 414,
    "dyspnea": 79 / 414,
    "muscle_pain": 58 / 414,
    "sore_throat": 55 / 414,
    "chills": 44 / 414,
    "headache": 39 / 414,
    "nasal_congestion": 21 / 414,
    "nausea": 15 / 414,
    "diarrhea": 16 / 414,
}
PAIRED = {"wheezing": "dyspnea", "joint_pain": "muscle_pain", "vomiting": "nausea"}
# Admitted patients report dyspnea and fever more often (sample adults: 38 % vs 14 %, 89 % vs 80 %): log-odds
# shifts that keep the overall prevalence at the sample's.
ADMITTED_SHIFT = {"dyspnea": 1.3, "fever": 0.7}


def _logistic(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-z))


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _age_tilted_intercept(share: float, slope: float) -> float:
    """The log-odds intercept at which logistic(intercept + slope (age - mean)) has mean `share` over the adult
    age distribution (a deterministic quantile grid of it, so no random draw is spent)."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    ages = np.clip(AGE_MEAN + AGE_SD * norm.ppf((np.arange(400) + 0.5) / 400), 18, 100) - AGE_MEAN
    return float(brentq(lambda b: float(_logistic(b + slope * ages).mean()) - share, -20.0, 20.0))


def _levels(
    rng: np.random.Generator,
    position: npt.NDArray[np.float64],
    levels: tuple[str, ...],
    cut_points: tuple[float, ...],
) -> npt.NDArray[Any]:
    """Ordered levels from a noisy latent position: level i where it falls between cut points i-1 and i."""
    noisy = position + rng.standard_normal(len(position))
    return np.asarray(levels, dtype=object)[np.searchsorted(np.asarray(cut_points), noisy)]


def generate_synthea_covid(seed: int = 0, n_patients: int = SYNTHEA_COVID_PATIENTS) -> pd.DataFrame:
    """Synthetic adult COVID-19 patients, one row each; deterministic for a seed. Label: `died` (0/1)."""
    rng = np.random.default_rng(seed)
    n = n_patients
    age = np.round(np.clip(AGE_MEAN + AGE_SD * rng.standard_normal(n), 18, 100), 1)
    years = age - 50.0
    male = rng.random(n) < 0.505  # the sample's adults: 0.505 male
    gender = np.where(male, "M", "F").astype(object)

    # Socio-economic position: drives education, employment, coverage and (mildly) race and ethnicity, and
    # nothing about health (as in the sample). sd 1 latent; each level adds its own noise.
    position = rng.standard_normal(n)
    # Overall shares: higher 0.57, high school 0.28, primary 0.15 (the study's Figure 40 mix, not the sample's
    # all-higher-or-primary, docs/datasets.md).
    education = _levels(rng, position, EDUCATION_LEVELS, (-1.47, -0.25))
    # Full-time 0.60, part-time 0.23, unemployed 0.11, not in labour force 0.06 (the sample's adults).
    employment = _levels(rng, -position, EMPLOYMENT_LEVELS, (0.36, 1.35, 2.2))
    race = _levels(
        rng, -0.5 * position, RACES, (0.86, 1.26, 1.74, 2.3)
    )  # white 0.78, black 0.09, asian 0.07, other 0.04
    ethnicity = np.where(rng.random(n) < _logistic(-2.1 - 0.4 * position), "hispanic", "nonhispanic").astype(object)
    # Lifetime coverage grows with age (the sample's log coverage and age: r = 0.35) and with means.
    log_coverage = 12.77 + 0.025 * (age - AGE_MEAN) + 0.45 * position + 0.85 * rng.standard_normal(n)
    coverage = np.round(np.exp(log_coverage), 2)
    # The sample's 2021 Synthea build exports expenses as 0; later builds fill them. Not calibrated.
    expenses = np.round(np.exp(10.8 + 0.02 * (age - AGE_MEAN) + 0.8 * rng.standard_normal(n)), 2)
    social_isolation = (rng.random(n) < 0.49).astype(np.int64)  # the sample's adults: 0.489

    # Comorbidities at onset: the sample's adult shares (obesity 0.48, hypertension 0.30, prediabetes 0.36,
    # diabetes 0.05, hyperlipidemia 0.12), rising with age and, for the metabolic ones, with obesity.
    obesity = rng.random(n) < _logistic(-0.08 + 0.005 * years)
    hypertension = rng.random(n) < _logistic(-1.25 + 0.05 * years + 0.5 * obesity)
    prediabetes = rng.random(n) < _logistic(-0.85 + 0.02 * years + 0.6 * obesity)
    diabetes = rng.random(n) < _logistic(-3.6 + 0.04 * years + 1.0 * obesity)
    hyperlipidemia = rng.random(n) < _logistic(-2.15 + 0.04 * years)
    rare = {
        name: rng.random(n) < _logistic(_logit(share) - 0.5 + 0.06 * years)  # rarer in the young
        for name, (share, _) in RARE_CONDITIONS.items()
    }

    background = {}
    for name, _, count, carriers_age in BACKGROUND_CONDITIONS:
        share = count / SAMPLE_ADULTS
        # An age slope that puts the carriers' mean age near the sample's (a logistic tilt of a normal age).
        slope = float(np.clip((carriers_age - AGE_MEAN) / (AGE_SD**2 * (1 - share)), -0.1, 0.1))
        intercept = _age_tilted_intercept(share, slope)
        background[name] = rng.random(n) < _logistic(intercept + slope * (age - AGE_MEAN))

    # How ill the infection makes this patient beyond what the record shows: the label's noise.
    severity = rng.standard_normal(n)
    burden = 0.4 * hypertension + 0.4 * diabetes + 0.4 * obesity + 0.15 * prediabetes
    burden = burden + 0.5 * sum(rare.values())
    # Admission (pneumonia + hypoxemia + respiratory distress): 22 % of the sample's adults.
    admitted = rng.random(n) < _logistic(-2.05 + 0.025 * years + burden + severity)
    # Death: 6.3 % of the sample's adults (0 % under 40, 2 % at 40-60, 7 % at 60-70, 25 % at 70-80, 43 % over
    # 80; 24 % of the admitted against 1.2 % of the others).
    death_logit = (
        -6.05
        + 0.075 * years
        + 0.35 * male
        + 2.4 * admitted
        + 0.3 * hypertension
        + 0.5 * diabetes
        + 0.2 * obesity
        + 1.0 * severity
    )
    for name, (_, log_odds_ratio) in RARE_CONDITIONS.items():
        death_logit = death_logit + log_odds_ratio * rare[name]
    died = rng.random(n) < _logistic(death_logit)

    data: dict[str, object] = {
        "age": age,
        "gender": gender,
        "race": race,
        "ethnicity": ethnicity,
        "education": education,
        "employment": employment,
        "healthcare_coverage": coverage,
        "healthcare_expenses": expenses,
        "social_isolation": social_isolation,
        "hypertension": hypertension,
        "prediabetes": prediabetes,
        "diabetes": diabetes,
        "obesity": obesity,
        "hyperlipidemia": hyperlipidemia,
        **rare,
        **background,
    }
    admitted_share = float(admitted.mean())
    mild = {}
    for name, share in MILD_PREVALENCE.items():
        shift = ADMITTED_SHIFT.get(name, 0.0)
        # Centre the shift so the overall prevalence stays the sample's.
        mild[name] = rng.random(n) < _logistic(_logit(share) + shift * (admitted - admitted_share))
    for name in SYMPTOMS:
        data[name] = mild[PAIRED.get(name, name)]
    for name in ADMISSION:
        data[name] = admitted
    data["died"] = died
    frame = pd.DataFrame(data)
    flags = [*SOCIAL, *COMORBIDITIES, *RARE_CONDITIONS, *BACKGROUND, *SYMPTOMS, *ADMISSION, "died"]
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
