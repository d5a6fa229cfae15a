"""A Synthea CSV export (patients.csv + conditions.csv) -> one row per COVID-19 patient, in the columns of the
built-in generator, so real Synthea output can replace the generated data.

Conditions are matched by SNOMED code, or by description when a Synthea build uses another code.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from app.datasets.builtin import BACKGROUND_CONDITIONS, SYNTHEA_COVID_COLUMNS
from app.datasets.errors import DatasetError
from app.datasets.tables import decode_text

COVID_19 = "840539006"
SYMPTOM_WINDOW_DAYS = 60  # symptoms and admission findings counted from onset to 60 days after
PATIENT_COLUMNS = (
    "Id",
    "BIRTHDATE",
    "DEATHDATE",
    "RACE",
    "ETHNICITY",
    "GENDER",
    "HEALTHCARE_EXPENSES",
    "HEALTHCARE_COVERAGE",
)
CONDITION_COLUMNS = ("START", "STOP", "PATIENT", "CODE", "DESCRIPTION")

# flag column -> (SNOMED codes, descriptions without the "(finding)"/"(disorder)" tag, lower case)
EPISODE_CONDITIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "fever": (frozenset({"386661006"}), frozenset({"fever"})),
    "cough": (frozenset({"49727002"}), frozenset({"cough"})),
    "loss_of_taste": (frozenset({"36955009"}), frozenset({"loss of taste"})),
    "fatigue": (frozenset({"84229001"}), frozenset({"fatigue"})),
    "sputum": (frozenset({"248595008"}), frozenset({"sputum finding"})),
    "dyspnea": (frozenset({"267036007"}), frozenset({"dyspnea"})),
    "wheezing": (frozenset({"56018004"}), frozenset({"wheezing"})),
    "muscle_pain": (frozenset({"68962001"}), frozenset({"muscle pain"})),
    "joint_pain": (frozenset({"57676002"}), frozenset({"joint pain"})),
    "sore_throat": (frozenset({"267102003"}), frozenset({"sore throat symptom"})),
    "chills": (frozenset({"43724002"}), frozenset({"chill"})),
    "headache": (frozenset({"25064002"}), frozenset({"headache"})),
    "nasal_congestion": (frozenset({"68235000"}), frozenset({"nasal congestion"})),
    "nausea": (frozenset({"422587007"}), frozenset({"nausea"})),
    "vomiting": (frozenset({"249497008"}), frozenset({"vomiting symptom"})),
    "diarrhea": (frozenset({"267060006"}), frozenset({"diarrhea symptom"})),
    "pneumonia": (frozenset({"233604007"}), frozenset({"pneumonia"})),
    "hypoxemia": (frozenset({"389087006"}), frozenset({"hypoxemia"})),
    "respiratory_distress": (frozenset({"271825005"}), frozenset({"respiratory distress"})),
}
# Active on the day of onset.
STANDING_CONDITIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "hypertension": (frozenset({"59621000"}), frozenset({"hypertension", "essential hypertension"})),
    "prediabetes": (frozenset({"15777000"}), frozenset({"prediabetes"})),
    "diabetes": (frozenset({"44054006"}), frozenset({"diabetes", "diabetes mellitus type 2"})),
    "obesity": (
        frozenset({"162864005", "408512008"}),
        frozenset({"body mass index 30+ - obesity", "body mass index 40+ - severely obese"}),
    ),
    "hyperlipidemia": (frozenset({"55822004"}), frozenset({"hyperlipidemia"})),
    "coronary_heart_disease": (frozenset({"53741008"}), frozenset({"coronary heart disease"})),
    "stroke": (frozenset({"230690007"}), frozenset({"stroke"})),
    "atrial_fibrillation": (frozenset({"49436004"}), frozenset({"atrial fibrillation"})),
    "cancer": (
        frozenset({"254837009", "109838007", "363406005", "93761005", "254637007", "424132000", "92691004"}),
        frozenset(
            {
                "malignant neoplasm of breast",
                "overlapping malignant neoplasm of colon",
                "malignant tumor of colon",
                "primary malignant neoplasm of colon",
                "non-small cell lung cancer",
                "non-small cell carcinoma of lung, tnm stage 1",
                "carcinoma in situ of prostate",
            }
        ),
    ),
    "alzheimers": (
        frozenset({"26929004", "230265002"}),
        frozenset({"alzheimer's disease", "familial alzheimer's disease of early onset"}),
    ),
    "copd": (
        frozenset({"185086009", "87433001"}),
        frozenset({"chronic obstructive bronchitis", "pulmonary emphysema"}),
    ),
    "social_isolation": (frozenset({"422650009"}), frozenset({"social isolation"})),
    # The generator's background conditions, by their SNOMED codes.
    **{name: (frozenset({code}), frozenset()) for name, code, *_ in BACKGROUND_CONDITIONS},
}
# Social findings: the latest one started on or before onset is the patient's level.
EDUCATION_FINDINGS = {
    "224295006": "primary",
    "5251000175109": "high_school",
    "224299000": "higher",
}
EMPLOYMENT_FINDINGS = {
    "160903007": "full_time",
    "160904001": "part_time",
    "73438004": "unemployed",
    "741062008": "not_in_labor_force",
}


def import_synthea_export(patients_csv: str | Path, conditions_csv: str | Path) -> pd.DataFrame:
    """Read a Synthea export and return one row per COVID-19 patient (see `synthea_covid_rows`)."""
    return synthea_covid_rows(_read_export_csv(patients_csv), _read_export_csv(conditions_csv))


def _read_export_csv(path: str | Path) -> pd.DataFrame:
    try:
        text = decode_text(Path(path).read_bytes())
    except OSError as exc:
        raise DatasetError("unreadable_file", f"{Path(path).name} cannot be read: {type(exc).__name__}") from None
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DatasetError("unreadable_file", f"{Path(path).name} cannot be parsed: {type(exc).__name__}") from None


def _require(df: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DatasetError(
            "missing_columns", f"{what} lacks required column(s): {', '.join(missing)}", {"columns": missing}
        )


def _matches(conditions: pd.DataFrame, codes: frozenset[str], descriptions: frozenset[str]) -> pd.Series:
    text = conditions["DESCRIPTION"].fillna("").str.replace(r"\s*\((finding|disorder|situation)\)?$", "", regex=True)
    return conditions["CODE"].isin(codes) | text.str.strip().str.lower().isin(descriptions)


def synthea_covid_rows(patients: pd.DataFrame, conditions: pd.DataFrame) -> pd.DataFrame:
    """One row per patient with a COVID-19 condition: age at onset, demographics, coverage and expenses,
    social findings (latest at onset), comorbidities active at onset, symptoms and admission findings starting
    within 60 days of onset, and `died` (death on or after onset)."""
    _require(patients, PATIENT_COLUMNS, "patients.csv")
    _require(conditions, CONDITION_COLUMNS, "conditions.csv")
    conditions = conditions.assign(
        CODE=conditions["CODE"].astype(str).str.strip(),
        start=pd.to_datetime(conditions["START"], errors="coerce").dt.tz_localize(None).dt.normalize(),
        stop=pd.to_datetime(conditions["STOP"], errors="coerce").dt.tz_localize(None).dt.normalize(),
    )
    onset = conditions.loc[conditions["CODE"] == COVID_19].groupby("PATIENT")["start"].min().dropna()
    people = patients.drop_duplicates("Id").set_index("Id")
    onset = onset[onset.index.isin(people.index)]
    columns = list(SYNTHEA_COVID_COLUMNS)
    if onset.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    people = people.loc[onset.index]
    birth = pd.to_datetime(people["BIRTHDATE"], errors="coerce").dt.tz_localize(None)
    death = pd.to_datetime(people["DEATHDATE"], errors="coerce").dt.tz_localize(None)

    out = pd.DataFrame(index=onset.index)
    out["age"] = ((onset - birth).dt.days / 365.25).round(1)
    out["gender"] = people["GENDER"]
    out["race"] = people["RACE"]
    out["ethnicity"] = people["ETHNICITY"]
    out["healthcare_coverage"] = pd.to_numeric(people["HEALTHCARE_COVERAGE"], errors="coerce")
    out["healthcare_expenses"] = pd.to_numeric(people["HEALTHCARE_EXPENSES"], errors="coerce")

    own = conditions[conditions["PATIENT"].isin(onset.index)]
    patient_onset = own["PATIENT"].map(onset)
    days = (own["start"] - patient_onset).dt.days
    in_episode = (days >= 0) & (days <= SYMPTOM_WINDOW_DAYS)
    active = (own["start"] <= patient_onset) & (own["stop"].isna() | (own["stop"] >= patient_onset))
    started_before = own["start"] <= patient_onset

    out["education"] = _latest_finding(own[started_before], EDUCATION_FINDINGS)
    out["employment"] = _latest_finding(own[started_before], EMPLOYMENT_FINDINGS)
    for name, (codes, descriptions) in STANDING_CONDITIONS.items():
        out[name] = _has(own[active & _matches(own, codes, descriptions)], out.index)
    for name, (codes, descriptions) in EPISODE_CONDITIONS.items():
        out[name] = _has(own[in_episode & _matches(own, codes, descriptions)], out.index)
    out["died"] = (death.notna() & (death >= onset)).astype(np.int64)
    return out[columns].reset_index(drop=True)


def _latest_finding(conditions: pd.DataFrame, findings: dict[str, str]) -> pd.Series:
    """Per patient, the level of the most recently started finding of this family (missing if none)."""
    rows = conditions[conditions["CODE"].isin(findings.keys())].sort_values("start", kind="stable")
    latest = rows.groupby("PATIENT")["CODE"].last()
    return latest.map(findings)


def _has(rows: pd.DataFrame, patients: pd.Index) -> pd.Series:
    return pd.Series(patients.isin(rows["PATIENT"].unique()).astype(np.int64), index=patients)
