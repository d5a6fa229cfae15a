"""Smoke test of the reproduction pipeline at tiny scale (not a measurement)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROW_FIELDS = {"utility_loss", "utility_loss_interval", "epsilon", "clip", "noise", "games", "trials", "index"}


def _check_row(row: dict, confirmed: dict) -> None:
    """A table row is the recommendation of its tune() run, with the confirmation's figures."""
    assert row["reason"] is None and set(row) >= ROW_FIELDS
    rec = confirmed["recommendation"]
    confirmation = rec["confirmation"]
    assert confirmation["repeats"] == 2 and confirmation["reference_models"] == 2
    assert abs(row["utility_loss"] - confirmation["utility_loss"]["value"]) < 1e-12
    assert row["utility_loss_interval"] == confirmation["utility_loss"]
    membership = row["games"]["membership"]
    assert abs(membership["attack_accuracy"] - confirmation["attack_accuracy"]["value"]) < 1e-12
    first_repeat = rec["games"]["membership"]["attacks"]["rmia"]
    assert membership["attacks"]["rmia"]["tpr_at_1pct_fpr"] == first_repeat["tpr_at_1pct_fpr"]
    assert set(membership["attacks"]["rmia"]) == {"tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr"}
    assert row["games"]["population"]["attack_accuracy"] == rec["games"]["population"]["attack_accuracy"]
    assert (row["epsilon"], row["clip"], row["noise"], row["index"]) == (
        rec["epsilon"],
        rec["clip"],
        rec["noise"],
        rec["index"],
    )
    assert row["trials"] == len(confirmed["trials"])


@pytest.mark.slow  # 86 s alone, 296 s on a loaded machine
def test_quick_reproduction_writes_tables_json_and_figures(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "reproduce_study.py"),
            "--quick",
            "--setup",
            "synthea-sgd",
            "--workers",
            "2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "results" / "reproduction.json").read_text())
    setup = result["synthea_sgd"]
    config = setup["config"]
    assert config["quick"] and config["trials"] == 3 and config["audit_k"] == 2 and config["confirm_repeats"] == 2
    assert config["tradeoffs"] == ["0.5"] and config["target_epsilons"] == ["3"]

    baseline = setup["baseline"]
    assert set(baseline) >= {
        "utility_members",
        "utility_validation",
        "utility_test",
        "utility_external",
        "label_only_attack_accuracy",
        "games",
    }
    assert baseline["privacy_game"] == "membership"
    membership, population = baseline["games"]["membership"], baseline["games"]["population"]
    assert membership["reference_models"] == 2  # the audit's K
    assert set(membership["attacks"]["rmia"]) == {"accuracy", "auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr"}
    assert set(population) >= {"attack_accuracy", "reference_attack_accuracy", "attacks"}

    # Tables 13/14 under the budget, and the target-epsilon row, from the product's tune().
    raw = json.loads((tmp_path / "results" / "reproduction-synthea-sgd-trials.json").read_text())
    tunes = {(t["kind"], t["key"]): t for t in raw["tunes"]}
    row = setup["tradeoffs"]["0.5"]
    _check_row(row, tunes[("tradeoff", "0.5")])
    assert row["epsilon"] <= 10 * (1 + 1e-6) and row["trials"] == 3
    target = setup["target_epsilon"]["3"]
    _check_row(target, tunes[("target_epsilon", "3")])
    assert abs(target["epsilon"] - 3) <= 0.03 and target["trials"] == 2
    assert all(abs(t["epsilon"] - 3) <= 0.03 for t in tunes[("target_epsilon", "3")]["trials"])

    # Search cost: keys in the setup and at the top; the bayes seed-0 run is the t = 0.5 tune()'s search.
    efficiency = setup["search_efficiency"]
    assert result["search_efficiency"]["synthea_sgd"] == efficiency
    assert {"bayes_trials_to_1se", "random_trials_to_1se", "grid_best_posterior_mean", "definition"} <= set(
        efficiency
    )
    assert efficiency["grid_trials"] == 4 and len(efficiency["per_seed"]["bayes"]) == 1
    searches = {(s["method"], s["seed"]): s for s in raw["searches"]}
    assert searches[("bayes", 0)]["trials"] == tunes[("tradeoff", "0.5")]["trials"]
    assert len(searches[("random", 0)]["trials"]) == 3
    assert all(t["epsilon"] <= 10 * (1 + 1e-6) for s in raw["searches"] for t in s["trials"])
    for curve in raw["search_cost_curves"].values():
        assert [r["trials"] for r in curve[0]] == [3] and curve[0][0]["grid_mean"] is not None

    # The grid: the study's space (noise from 0), both games measured at every point.
    assert len(raw["grid"]) == 4 and {g["noise"] for g in raw["grid"]} == {0.0, 5.0}
    assert all(g["population_attack_accuracy"] is not None for g in raw["grid"])

    for name in ("grid-surfaces", "optimizer-surfaces", "convergence", "search-cost"):
        assert (tmp_path / "figures" / f"synthea-sgd-{name}.png").stat().st_size > 10_000
    markdown = (tmp_path / "reproduction.md").read_text()
    assert "--quick" in markdown and "| utility_test |" in markdown and "trials_to_1se" in markdown
    # The tables print the confirmed figures.
    loss = row["utility_loss_interval"]
    assert f"| 0.5 | {loss['value']:.3f} [{loss['low']:.3f}, {loss['high']:.3f}] | {row['epsilon']:.2f} |" in markdown
    assert f"| 3 | {target['utility_loss']:.3f} [" in markdown
