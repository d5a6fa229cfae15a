"""The one definition of a tuning result: the CLI writes it as JSON, the database stores it, the API returns it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.tuning.model_spec import ModelSpec
from app.tuning.search import SearchSpace, SearchSpec

PrivacyGame = Literal["membership", "population"]
# The key of the calibrated reference-model attack in MembershipGame.attacks.
CALIBRATED_ATTACK = "rmia"


class Estimate(BaseModel):
    """A measured value with its 95 % interval."""

    value: float = Field(description="The point estimate.")
    low: float = Field(description="Lower end of the 95 % interval.")
    high: float = Field(description="Upper end of the 95 % interval.")


class AttackScores(BaseModel):
    """One membership-inference attack, every record scored once (cross-fitted where the attack is fitted).

    Accuracy: Clopper-Pearson interval. AUC: Hanley-McNeil interval. TPR at a fixed FPR: the ROC read at the
    largest threshold whose FPR is within the target (chosen on the same records), with a Clopper-Pearson
    interval on the true positives at that threshold."""

    accuracy: Estimate = Field(
        description="Share of records the attack labels correctly (member or not); 0.5 is "
        "guessing, lower is more private."
    )
    auc: Estimate = Field(
        description="ROC-AUC of the attack's member scores; 0.5 is guessing, lower is more private."
    )
    tpr_at_1pct_fpr: Estimate = Field(
        description="Share of members found while at most 1 % of nonmembers are "
        "wrongly flagged; near 0.01 is guessing, lower is more private."
    )
    tpr_at_0_1pct_fpr: Estimate = Field(description="The same at 0.1 % false positives.")


class ScoreHistogram(BaseModel):
    """The calibrated attack's per-record membership scores counted in fixed bins, members and nonmembers apart:
    the shape of the two distributions, with no record and no data value."""

    edges: list[float] = Field(description="Bin edges over the score's range [0, 1] (one more than the counts).")
    members: list[int] = Field(description="Members whose score falls in each bin.")
    nonmembers: list[int] = Field(description="Nonmembers (holdout records) whose score falls in each bin.")


class MembershipGame(BaseModel):
    """Members against in-distribution holdout records the target never saw: what DP bounds."""

    attack_accuracy: float = Field(
        description="Highest accuracy over the attacks (the study's reading); 0.5 is guessing."
    )
    attacks: dict[str, AttackScores] = Field(
        description="rf and nn (ART black-box), loss (threshold), rmia (calibrated)."
    )
    members: int = Field(description="Members scored (as many holdout records are scored).")
    reference_models: int = Field(description="K: reference models of the calibrated attack.")
    calibration_seconds: float = Field(description="Seconds the calibrated attack took (training its K models).")
    epsilon_lower_bound: float = Field(
        description="Largest epsilon the strongest label-free attack (loss or rmia) proves at 95 % confidence: "
        "threshold chosen on one half of the records, Clopper-Pearson bounds on TPR and FPR on the other half."
    )
    epsilon_lower_bound_attack: str | None = Field(description="The attack the lower bound comes from.")
    score_histogram: ScoreHistogram | None = Field(
        default=None,
        description="The calibrated attack's scores, binned (null in results from before it was recorded).",
    )


class PopulationGame(BaseModel):
    """The study's game: members against the external set, with a control model trained without the members."""

    attack_accuracy: float = Field(description="Highest accuracy over the attacks on the target model.")
    attacks: dict[str, AttackScores] = Field(description="Each attack on the target model, by name (rf, nn, loss).")
    reference_attack_accuracy: float = Field(
        description="The same attacks on a control model trained like the target on the holdout records, which "
        "never saw the members: what the difference between members' and external records alone gives."
    )
    reference_attacks: dict[str, AttackScores] = Field(description="The same attacks on the control model.")
    shift: float = Field(
        description="reference_attack_accuracy - 0.5: the part of the attack that is population shift."
    )
    membership: float = Field(
        description="attack_accuracy - reference_attack_accuracy: the part left for membership."
    )
    members: int = Field(description="Members scored (as many external records are scored).")


class Games(BaseModel):
    """The attacks' results in both privacy games."""

    membership: MembershipGame = Field(description="Members against holdout records: what DP bounds.")
    population: PopulationGame | None = Field(description="Present when the split has an external set.")


class SplitSizes(BaseModel):
    """Rows in each part of the split."""

    members: int = Field(description="Rows the target model trains on.")
    holdout: int = Field(description="In-distribution rows never trained on: the membership game's nonmembers.")
    validation: int = Field(description="Rows that select the parameters.")
    test: int = Field(description="Rows that only report the chosen parameters' utility.")
    external: int | None = Field(description="Null when the split kind has no external attacker's set.")


class Utility(BaseModel):
    """ROC-AUC (binary) or macro one-vs-rest ROC-AUC (multi-class) on each split, and test accuracy.
    Validation selects parameters; test only reports them."""

    utility_members: float = Field(description="ROC-AUC on the members (the training rows); higher is better.")
    utility_holdout: float = Field(description="ROC-AUC on the holdout rows.")
    utility_validation: float = Field(description="ROC-AUC on the validation split, which the objective uses.")
    utility_test: float = Field(description="ROC-AUC on the test split, which only reports.")
    utility_external: float | None = Field(description="ROC-AUC on the external set; null when the split has none.")
    utility_test_interval: Estimate = Field(description="Test ROC-AUC with its Hanley-McNeil 95 % interval.")
    utility_validation_interval: Estimate | None = Field(
        default=None,
        description="Validation ROC-AUC with its Hanley-McNeil 95 % interval (the objective's "
        "sampling error; null in results from before it was recorded).",
    )
    accuracy_test: float = Field(description="Share of test rows classified correctly.")


class Baseline(Utility):
    """The model trained without privacy: u_start = utility_validation, p_start = attack_accuracy."""

    privacy_game: PrivacyGame = Field(description="The game attack_accuracy is read from.")
    attack_accuracy: float = Field(description="p_start: the privacy game's highest attack accuracy.")
    games: Games = Field(description="Every attack in both games.")
    epsilon_lower_bound: float = Field(description="games.membership.epsilon_lower_bound.")
    label_only_attack_accuracy: float | None = Field(
        default=None,
        description="Accuracy of the best attack that sees only the true label (0.5 when members and nonmembers "
        "have the same label distribution) in the privacy game: a floor no training can take the attacks below.",
    )
    logistic_regression_utility_test: float | None = Field(
        description="Test ROC-AUC of a scikit-learn logistic regression fitted on the members: what a simple "
        "model reaches on this split, as a reference for the baseline."
    )
    learns: bool = Field(description="False when the baseline gate finds the baseline does not learn.")
    weak_reasons: list[str] = Field(default_factory=list, description="Why the gate found it does not learn.")
    seconds: float = Field(description="Seconds the baseline took, its attacks and reference models included.")


class RepeatValues(BaseModel):
    """One repeat's scalars (new initialisation, batches, noise and attack halves)."""

    utility_validation: float = Field(description="Validation ROC-AUC of this repeat.")
    utility_test: float = Field(description="Test ROC-AUC of this repeat.")
    attack_accuracy: float = Field(description="The privacy game's highest attack accuracy in this repeat.")


class Checkpoint(BaseModel):
    """The first repeat's validation utility part-way through training (search.pruning): what the pruning rule
    compares (app/tuning/pruning.py), stored for every trial of a pruning job so later trials compare like
    with like."""

    step: int = Field(description="Steps trained when the utility was read (of `steps`).")
    steps: int = Field(description="The trial's full step count.")
    utility_validation: Estimate = Field(
        description="Validation ROC-AUC at the checkpoint, with its Hanley-McNeil 95 % interval."
    )
    median: float | None = Field(
        description="Median checkpoint utility of the job's earlier completed trials at the same step, which the "
        "rule compared with; null during the warm-up."
    )
    compared: int = Field(description="Earlier completed trials at the same step.")
    best_feasible: float | None = Field(
        description="Checkpoint utility of the best feasible completed trial (never pruned at or above it)."
    )
    pruned: bool = Field(description="Whether the rule stopped the trial here.")
    reason: str = Field(description="The rule's reading.")


class TrialMeasurement(Utility):
    """What DP-SGD training at (clip, noise) measured, averaged over `repeats`; independent of the trade-off t.
    The utilities and attack_accuracy are means over the repeats; `games` is the first repeat's detail."""

    model_config = ConfigDict(extra="ignore")

    clip: float = Field(description="Clipping norm: each example's gradient is scaled down to at most this L2 norm.")
    noise: float = Field(
        description="Noise multiplier: Gaussian noise of standard deviation noise * clip is added "
        "to each summed batch gradient; 0 means no DP. More noise: smaller epsilon, less utility."
    )
    privacy_game: PrivacyGame = Field(description="The game attack_accuracy is read from.")
    attack_accuracy: float = Field(description="The privacy game's highest attack accuracy (mean over repeats).")
    attack_accuracy_se: float | None = Field(description="Standard error over repeats; null for one repeat.")
    utility_validation_se: float | None = Field(
        description="Standard error of utility_validation over repeats; null for one repeat."
    )
    utility_test_se: float | None = Field(description="Standard error of utility_test over repeats; null for one.")
    games: Games = Field(description="Every attack in both games (first repeat).")
    repeats: int = Field(description="Seeds this point was trained and attacked with.")
    repeat_values: list[RepeatValues] = Field(description="Each repeat's figures, in seed order.")
    epsilon: float | None = Field(description="PLD epsilon at delta; null when noise is 0 (no finite guarantee).")
    epsilon_rdp: float | None = Field(description="RDP epsilon at delta, for cross-checking (never below epsilon).")
    epsilon_lower_bound: float = Field(description="games.membership.epsilon_lower_bound (first repeat).")
    delta: float = Field(description="The delta epsilon is computed at.")
    attack_accuracy_bound: float | None = Field(
        description="Tight cap on any membership attack's accuracy (balanced prior) from the PLD: (1 + delta(0)) / 2."
    )
    tpr_bound_at_1pct_fpr: float | None = Field(
        description="Cap on any attack's TPR at 1 % FPR from the PLD: min over eps of e^eps * 0.01 + delta(eps)."
    )
    tpr_bound_at_0_1pct_fpr: float | None = Field(description="The same cap at 0.1 % FPR.")
    steps: int = Field(description="Optimizer steps: epochs * ceil(n / batch_size).")
    sampling_rate: float = Field(description="Poisson sampling rate batch_size / n.")
    seconds: float = Field(description="Seconds the trial took (training and attacks, all repeats).")
    checkpoint: Checkpoint | None = Field(
        default=None,
        description="The first repeat's validation utility at the pruning checkpoint; null when the job does not "
        "prune (search.pruning 'none') or the model is a user's Keras model (never pruned).",
    )


class PrunedMeasurement(BaseModel):
    """A trial the pruning rule stopped at its checkpoint: no attacks ran, and it is never recommended. Its
    epsilon is its full configuration's (every step), never the truncated training's."""

    clip: float = Field(description="Its clipping norm.")
    noise: float = Field(description="Its noise multiplier.")
    checkpoint: Checkpoint = Field(description="Where it was stopped, and why.")
    epsilon: float | None = Field(
        description="PLD epsilon at delta of the full configuration (all `steps`); null when noise is 0."
    )
    epsilon_rdp: float | None = Field(description="RDP epsilon at delta of the full configuration.")
    delta: float = Field(description="The delta epsilon is computed at.")
    steps: int = Field(description="The full configuration's optimizer steps (it trained checkpoint.step of them).")
    sampling_rate: float = Field(description="Poisson sampling rate batch_size / n.")
    seconds: float = Field(description="Seconds the trial took, to its checkpoint.")


class PrunedTrial(PrunedMeasurement):
    """A pruned trial of a job: counted in the budget, shown with its status, never recommended."""

    index: int = Field(description="The trial's number in the job.")


class Trial(TrialMeasurement):
    """A measurement scored against the baseline for one trade-off."""

    index: int = Field(description="The trial's number in the job, from 0, in the order trials were proposed.")
    utility_loss: float = Field(description="u_start - u_i on the test split (reported, never selected on).")
    objective: float = Field(
        description="t (u_i - u_start) + (1 - t)(p_start - p_i), u on validation; mean over "
        "repeats. Higher is better; t = 1 weighs utility only, t = 0 privacy only."
    )
    objective_se: float | None = Field(description="Standard error of the objective over repeats; null for one.")
    objective_sampling_se: float | None = Field(
        default=None,
        description="Standard error of the objective from the records measured: the validation "
        "AUC's Hanley-McNeil error and the attack accuracy's binomial error, weighted by t and 1 - t. An absolute "
        "uncertainty: the validation split is the same for every trial, so most of it is shared, and comparisons "
        "between trials are less uncertain (the search uses objective_se, or 0.01 measured over seeds).",
    )


class FailedTrial(BaseModel):
    """A trial that raised instead of measuring."""

    index: int = Field(description="The trial's number in the job.")
    clip: float = Field(description="Its clipping norm.")
    noise: float = Field(description="Its noise multiplier.")
    error: str = Field(description="What went wrong: the error's type and message.")


class GuaranteeSpec(BaseModel):
    """What the recommendation must guarantee, and how it is confirmed."""

    model_config = ConfigDict(extra="forbid")

    max_epsilon: float | None = Field(
        default=10.0,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="Budget mode: no trial trains with an epsilon (PLD, at delta) above this; its noise floor "
        "comes from the accountant. null asks for no guarantee (noise 0 is searched; the study's original "
        "method).",
    )
    target_epsilon: float | None = Field(
        default=None,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="Target-epsilon mode: every trial's noise is calibrated to exactly this epsilon and only "
        "the clipping norm is searched.",
    )
    confirm_repeats: int = Field(
        default=3,
        ge=2,
        le=20,
        description="Fresh seeds the chosen point is measured "
        "again with, on validation and test, before it is recommended.",
    )
    max_utility_loss: float | None = Field(
        default=None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="If given, only points losing at most this much validation ROC-AUC against the baseline "
        "are recommended; when none does, the job succeeds with recommendation null and the reason.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> GuaranteeSpec:
        if (
            self.target_epsilon is not None
            and self.max_epsilon is not None
            and self.target_epsilon > self.max_epsilon
        ):
            raise ValueError(f"target_epsilon {self.target_epsilon:g} exceeds max_epsilon {self.max_epsilon:g}")
        return self

    @property
    def mode(self) -> TuningMode:
        if self.target_epsilon is not None:
            return "target_epsilon"
        return "budget" if self.max_epsilon is not None else "no_guarantee"


TuningMode = Literal["budget", "target_epsilon", "no_guarantee"]


class TrainingConfig(BaseModel):
    """Everything the epsilon of one DP-SGD training depends on: train exactly this to get it."""

    clip: float = Field(description="Clipping norm (per-example gradient L2 bound).")
    noise: float = Field(description="Noise multiplier (noise standard deviation over clip); 0 means no DP.")
    epochs: int = Field(description="Passes over the members.")
    batch_size: int = Field(description="Expected batch size (batches are Poisson-sampled).")
    learning_rate: float = Field(description="The learning rate used (the optimizer's default when none was set).")
    optimizer: str = Field(description="sgd or adam (its DP variant).")
    n: int = Field(description="Records trained on (the members).")
    sampling_rate: float = Field(description="Poisson sampling rate batch_size / n.")
    steps: int = Field(description="epochs * ceil(n / batch_size).")
    delta: float = Field(description="The delta epsilon holds at.")
    epsilon: float | None = Field(description="PLD epsilon at delta; null without noise (no guarantee).")
    epsilon_rdp: float | None = Field(description="RDP epsilon at delta, for cross-checking (never below epsilon).")
    accountant: str = Field(description="How epsilon was computed, and what it assumes.")
    model: ModelSpec = Field(description="The model spec.")


class PrivacyStatement(TrainingConfig):
    """privacy.json, beside the published model: its guarantee and what the guarantee covers."""

    tuning_cost: str = Field(description="Whether the search on the data is covered by epsilon.")
    tuned_on: Literal["private", "proxy"] = Field(description="Where the search, baseline and attacks ran.")
    seed_source: str = Field(description="Where the final training's seed came from.")
    noise_source: Literal["fast", "secure"] = Field(
        default="fast",
        description="fast: noise keyed from the training seed (reproducible); secure: keyed from os.urandom, each "
        "coordinate a sum of four draws (as Opacus' secure_mode). `rng` says what either means.",
    )
    rng: str = Field(description="The generator the DP noise was drawn with.")
    tf_privacy_statement: str = Field(
        description="TensorFlow Privacy's compute_dp_sgd_privacy_statement for "
        "the same training (PLD accounting), for comparison."
    )


class Confirmation(BaseModel):
    """The chosen point measured again on fresh seeds: means with 95 % t-intervals over the repeats."""

    repeats: int = Field(description="Fresh seeds the point was measured with.")
    seeds: list[int] = Field(description="Those seeds.")
    reference_models: int = Field(description="K of the calibrated attack in the confirmation (the audit's K).")
    utility_validation: Estimate = Field(description="Validation ROC-AUC.")
    utility_test: Estimate = Field(description="The untouched test split: the utility to expect.")
    utility_loss: Estimate = Field(description="Baseline test ROC-AUC minus utility_test.")
    attack_accuracy: Estimate = Field(description="The privacy game's highest attack accuracy.")
    objective: Estimate = Field(description="The objective at the job's trade-off; higher is better.")
    epsilon_lower_bound: float = Field(description="What the strongest attack proves (first repeat, K above).")
    seconds: float = Field(description="Seconds the confirmation took.")


class Selection(BaseModel):
    """How the recommended point was chosen among the trials."""

    method: Literal["posterior_mean", "best_observed"] = Field(
        description="posterior_mean: the Gaussian process's best posterior mean over the tried points, then the "
        "lowest epsilon within one standard error of it; best_observed: too few trials for a model."
    )
    best_posterior_index: int | None = Field(description="The trial with the best posterior mean.")
    posterior_mean: float | None = Field(description="Posterior mean objective of the recommended trial.")
    standard_error: float | None = Field(
        description="Posterior standard deviation of the leader's objective (the "
        "standard error of its estimate): the width of the 'within one SE' set."
    )
    within_one_se: list[int] = Field(
        default_factory=list,
        description="Trials whose posterior mean is within one "
        "standard error of the best; the lowest epsilon among them is recommended.",
    )
    feasible: int = Field(description="Trials that met max_epsilon and max_utility_loss.")


class Recommendation(Trial):
    """The recommended trial. After confirmation its measured fields are the confirmation's (means over its
    repeats at the same point), and `index` names the search trial that proposed it."""

    tradeoff: float = Field(description="t the point was chosen at: t = 1 weighs utility only, t = 0 privacy only.")
    mode: TuningMode = Field(
        description="budget (max_epsilon caps every trial), target_epsilon (noise fixed, clip "
        "searched) or no_guarantee (noise 0 allowed)."
    )
    headline: str = Field(description="One line: the parameters and the guarantee they give, or that there is none.")
    selection: Selection = Field(description="How the point was chosen among the trials.")
    training: TrainingConfig = Field(description="The complete configuration the guarantee is for.")
    confirmation: Confirmation | None = Field(description="Null when not confirmed (e.g. re-scored at another t).")
    tuning_cost: str = Field(description="Whether the search's own use of the data is covered by epsilon.")
    notes: list[str] = Field(description="Readings a person should know: what the attacks show, caveats.")


class MeasurementSpec(BaseModel):
    """How privacy is measured: the game the objective uses, the calibrated attack's K, repeats, the gate."""

    model_config = ConfigDict(extra="forbid")

    privacy_game: PrivacyGame = Field(
        default="membership",
        description="membership (members vs holdout, what DP bounds) or population (the "
        "study's members vs external; needs a split with an external set).",
    )
    repeats: int = Field(default=1, ge=1, le=20, description="Seeds each trial is measured over.")
    reference_models: int = Field(default=4, ge=2, le=64, description="K of the calibrated attack in search trials.")
    audit_reference_models: int = Field(
        default=16, ge=2, le=128, description="K of the calibrated attack for the baseline."
    )
    allow_weak_baseline: bool = Field(default=False, description="Tune even when the baseline gate fails.")


class TuningResult(BaseModel):
    """A whole tuning run: what was asked, the baseline, every trial and the recommendation."""

    mode: TuningMode = Field(description="budget, target_epsilon or no_guarantee (see guarantee).")
    guarantee: GuaranteeSpec = Field(description="What the recommendation had to guarantee.")
    search_space: SearchSpace = Field(description="Where the search looked, as the guarantee allows.")
    dataset: dict[str, Any] = Field(
        description="Where the data came from and what preparation did to it (source, "
        "rows used, imputed and dropped columns, split sizes), in counts and names."
    )
    model: ModelSpec = Field(description="The model spec trained.")
    search: SearchSpec = Field(description="The search spec.")
    measurement: MeasurementSpec = Field(description="How privacy was measured.")
    splits: SplitSizes = Field(
        description="Rows in each part of the split (members, holdout, validation, test, external)."
    )
    tradeoff: float = Field(description="t: t = 1 weighs utility only, t = 0 privacy only.")
    delta: float = Field(description="The delta every epsilon is reported at.")
    seed: int = Field(description="Seed of the split, the models and the search.")
    accounting: str = Field(description="The accountant and the assumptions every epsilon rests on.")
    baseline: Baseline = Field(description="The model trained without privacy.")
    trials: list[Trial] = Field(description="Succeeded trials in index order.")
    pareto_front: list[int] = Field(description="Indices of trials no other trial beats on both utility and attack.")
    failed_trials: list[FailedTrial] = Field(default_factory=list, description="Trials that raised.")
    pruned_trials: list[PrunedTrial] = Field(
        default_factory=list,
        description="Trials the pruning rule stopped at their checkpoint (search.pruning); counted in the budget, "
        "never recommended.",
    )
    stop_reason: str | None = Field(
        default=None, description="Why the search stopped: budget, time or grid_exhausted."
    )
    recommendation: Recommendation | None = Field(
        description="The recommended point; null when none could be recommended (see no_recommendation_reason)."
    )
    no_recommendation_reason: str | None = Field(
        default=None,
        description="Why recommendation is null: no trial met max_utility_loss (with the best "
        "feasible figures), or no trial succeeded.",
    )
    final_model: PrivacyStatement | None = Field(
        default=None, description="The published model's privacy.json, when a final model was trained."
    )
    seconds: float = Field(description="Seconds the whole run took.")
