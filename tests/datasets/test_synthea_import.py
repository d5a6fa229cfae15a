"""The Synthea export importer, on the real sample and on a hand-made export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from app.datasets import DatasetError, RandomSplit, import_synthea_export, prepare_dataset
from app.datasets.builtin import BACKGROUND_CONDITIONS, SAMPLE_ADULTS, SYNTHEA_COVID_COLUMNS

PATIENT_HEADER = "Id,BIRTHDATE,DEATHDATE,RACE,ETHNICITY,GENDER,HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE"
CONDITION_HEADER = "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION"


def test_real_sample(synthea_sample: Path) -> None:
    df = import_synthea_export(synthea_sample / "patients.csv", synthea_sample / "conditions.csv")
    assert list(df.columns) == list(SYNTHEA_COVID_COLUMNS)
    assert len(df) == 414
    assert int(df["died"].sum()) == 20
    counts = {c: int(df[c].sum()) for c in ("fever", "cough", "loss_of_taste", "fatigue", "dyspnea")}
    assert counts == {"fever": 341, "cough": 264, "loss_of_taste": 184, "fatigue": 154, "dyspnea": 79}
    assert set(df["education"].dropna()) == {"primary", "high_school", "higher"}
    assert df["education"].isna().sum() == 101  # children have no education finding
    # Synthea's admission findings: pneumonia, hypoxemia and respiratory distress are recorded together
    assert df["pneumonia"].sum() == df["hypoxemia"].sum() == df["respiratory_distress"].sum() == 80
    # The conditions v2 adds, counted among the sample's 317 adults as the generator's figures cite them
    adults = df[df["age"] >= 18]
    counts = {
        c: int(adults[c].sum())
        for c in (
            "hyperlipidemia",
            "coronary_heart_disease",
            "stroke",
            "cancer",
            "alzheimers",
            "copd",
            "refugee",
            "osteoporosis",
            "opioid_abuse",
        )
    }
    assert counts == {
        "hyperlipidemia": 38,
        "coronary_heart_disease": 11,
        "stroke": 10,
        "cancer": 14,
        "alzheimers": 6,
        "copd": 4,
        "refugee": 184,
        "osteoporosis": 17,
        "opioid_abuse": 3,
    }
    # Every background condition's count and carriers' mean age, as the generator's table states them
    assert len(adults) == SAMPLE_ADULTS
    for name, _, count, mean_age in BACKGROUND_CONDITIONS:
        carriers = adults[adults[name] == 1]
        assert (name, len(carriers)) == (name, count)
        assert carriers["age"].mean() == pytest.approx(mean_age, abs=0.1)
    # an imported export is a valid dptune table
    data, report = prepare_dataset(df, label="died", split=RandomSplit(), seed=0)
    assert report.rows_used == 414 and report.imputed["education"] == 101


def _write(tmp_path: Path, patients: list[str], conditions: list[str]) -> tuple[Path, Path]:
    (tmp_path / "patients.csv").write_text("\n".join([PATIENT_HEADER, *patients]) + "\n")
    (tmp_path / "conditions.csv").write_text("\n".join([CONDITION_HEADER, *conditions]) + "\n")
    return tmp_path / "patients.csv", tmp_path / "conditions.csv"


def test_windows_and_latest_findings(tmp_path: Path) -> None:
    paths = _write(
        tmp_path,
        [
            "a,1950-03-01,2020-03-20,white,nonhispanic,F,10.5,2000.0",
            "b,1990-01-01,,black,hispanic,M,0,100",
            "c,1980-01-01,2020-02-01,asian,nonhispanic,M,0,100",  # death recorded before onset
        ],
        [
            "2020-03-01,2020-03-30,a,e1,840539006,COVID-19",
            "2020-03-05,2020-03-10,a,e1,386661006,Fever (finding)",
            "2020-05-15,2020-05-20,a,e2,49727002,Cough (finding)",  # 75 days after onset: not this episode
            "2020-02-01,2020-02-10,a,e0,84229001,Fatigue (finding)",  # before onset
            "2010-01-01,,a,e3,59621000,Hypertension",
            "2015-01-01,2016-01-01,a,e4,162864005,Body mass index 30+ - obesity (finding)",  # over by onset
            "1970-01-01,,a,e5,224295006,Only received primary school education (finding)",
            "2000-01-01,,a,e6,224299000,Received higher education (finding)",
            "2021-01-01,,a,e7,160903007,Full-time employment (finding)",  # after onset
            "2020-03-10,,b,e8,840539006,COVID-19",
            "2020-03-11,,b,e8,99999999,Pneumonia (disorder)",  # unknown code, known description
            "2019-01-01,,b,e10,55822004,Hyperlipidemia",  # a comorbidity active at onset
            "2018-01-01,,b,e11,64859006,Osteoporosis (disorder)",  # a background condition, by its code
            "2020-03-12,,b,e8,76571007,Septic shock (disorder)",  # a terminal complication: not a column
            "2020-03-10,,c,e9,840539006,COVID-19",
        ],
    )
    df = import_synthea_export(*paths).set_index(pd.Index(["a", "b", "c"]))
    assert df.loc["a", "age"] == pytest.approx(70.0, abs=0.1)
    assert df["died"].tolist() == [1, 0, 0]
    assert df.loc["a", ["fever", "cough", "fatigue", "hypertension", "obesity"]].tolist() == [1, 0, 0, 1, 0]
    assert df.loc["a", "education"] == "higher"
    assert pd.isna(df.loc["a", "employment"])
    assert df.loc["b", ["pneumonia", "hyperlipidemia", "osteoporosis", "stroke"]].tolist() == [1, 1, 1, 0]
    assert "septic_shock" not in df.columns
    assert df.loc["a", "healthcare_expenses"] == 10.5


def test_patients_without_covid_are_left_out(tmp_path: Path) -> None:
    paths = _write(
        tmp_path, ["a,1950-03-01,,white,nonhispanic,F,0,0"], ["2020-03-05,,a,e1,386661006,Fever (finding)"]
    )
    assert len(import_synthea_export(*paths)) == 0


def test_missing_required_columns(tmp_path: Path) -> None:
    (tmp_path / "patients.csv").write_text("Id,BIRTHDATE,GENDER\na,1950-01-01,F\n")
    (tmp_path / "conditions.csv").write_text(CONDITION_HEADER + "\n2020-03-01,,a,e,840539006,COVID-19\n")
    with pytest.raises(DatasetError) as excinfo:
        import_synthea_export(tmp_path / "patients.csv", tmp_path / "conditions.csv")
    assert excinfo.value.code == "missing_columns"
    assert "RACE" in excinfo.value.details["columns"]
