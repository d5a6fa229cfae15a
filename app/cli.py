"""The `dptune` command: tune and demo run the engine locally; serve, worker and migrate run the service."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the commands import these lazily, so `dptune --help` loads no TensorFlow
    from pydantic import ValidationError

    from app.tuning.model_spec import ModelSpec
    from app.tuning.prepared import PreparedData
    from app.tuning.recommendation import TuneSource
    from app.tuning.results import (
        AttackScores,
        Estimate,
        GuaranteeSpec,
        MeasurementSpec,
        PrunedTrial,
        Trial,
        TuningResult,
    )
    from app.tuning.search import SearchSpec

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide TensorFlow's C++ start-up noise on CPU machines

# Warnings of the libraries that a user of the command can do nothing about. Filtered here, at the command's
# entry point only: tests and the service still see them.
_LIBRARY_WARNINGS = (
    (UserWarning, r"PyTorch not found"),  # ART: dptune uses none of its PyTorch estimators
)


def _split_help() -> str:
    return "random | kmeans:COL,COL,... | butina | column:COL"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, except where there is none (None, or a flag that is off):
    those helps say themselves what leaving the option out means."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action) or ""


class _Parser(argparse.ArgumentParser):
    """argparse.ArgumentParser with _HelpFormatter; subcommands' parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _checked(spec: str, field: str) -> Callable[[str], Any]:
    """An argparse type that reads a value with the type and bounds of `field` of the pydantic model `spec`
    (module.Class), so an out-of-range option fails while the arguments are parsed, before TensorFlow loads,
    and the bounds have one definition. 'none' is accepted where the field allows null."""

    def parse(text: str) -> Any:
        import importlib

        from pydantic import TypeAdapter, ValidationError

        module, _, name = spec.rpartition(".")
        info = getattr(importlib.import_module(module), name).model_fields[field]
        adapter: TypeAdapter[Any] = TypeAdapter(
            info.annotation if not info.metadata else _annotated(info.annotation, info.metadata)
        )
        try:
            if text.strip().lower() in {"none", "null"}:
                return adapter.validate_python(None)
            return adapter.validate_strings(text.strip())
        except ValidationError as exc:
            message = str(exc.errors()[0]["msg"])
            if text.strip().lower() in {"none", "null"}:
                message = "a value is needed here"
            raise argparse.ArgumentTypeError(f"{message[0].lower()}{message[1:]}, got {text!r}") from None

    return parse


def _annotated(annotation: Any, metadata: list[Any]) -> Any:
    from typing import Annotated

    return Annotated[(annotation, *metadata)]


def _in_range(
    kind: Callable[[str], Any], low: float, high: float, *, open_ends: bool = False
) -> Callable[[str], Any]:
    """An argparse type for a number in [low, high], or (low, high) with `open_ends` (for options without a
    spec field to read bounds from)."""
    shown = f"({low}, {high})" if open_ends else f"[{low}, {high}]"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if not (low < value < high if open_ends else low <= value <= high):  # NaN is outside too
            raise argparse.ArgumentTypeError(f"must be in {shown}, got {text}")
        return value

    return parse


_MODEL = "app.tuning.model_spec.ModelSpec"
_SEARCH = "app.tuning.search.SearchSpec"
_MEASUREMENT = "app.tuning.results.MeasurementSpec"
_GUARANTEE = "app.tuning.results.GuaranteeSpec"


def _add_search_options(parser: argparse.ArgumentParser, default_trials: int) -> None:
    parser.add_argument(
        "--search",
        choices=["bayes", "grid", "random"],
        default="bayes",
        help="how (clip, noise) is searched: bayes (a Gaussian process after space-filling points), grid or random",
    )
    parser.add_argument(
        "--trials",
        type=_checked(_SEARCH, "trials"),
        default=default_trials,
        help="trial budget; 'none' for --seconds alone",
    )
    parser.add_argument(
        "--seconds",
        type=_checked(_SEARCH, "seconds"),
        default=None,
        help="time budget in seconds, baseline included (default: none)",
    )
    parser.add_argument(
        "--tradeoff",
        type=_in_range(float, 0, 1),
        default=0.5,
        help="t in [0, 1]: weight of utility against privacy; t = 1 means utility only, t = 0 privacy only",
    )
    parser.add_argument(
        "--pruning",
        choices=["none", "median"],
        default="none",
        help="stop hopeless trials early: median stops a trial whose validation ROC-AUC at half its steps is "
        "more than one standard error below the median of the earlier completed trials' (after 4 of them); "
        "pruned trials count in the budget and are never recommended (default: none)",
    )
    parser.add_argument(
        "--max-clip",
        type=_checked(_SEARCH, "max_clip"),
        default=10.0,
        help="largest clipping norm searched (from 0.1, on a log scale)",
    )
    parser.add_argument(
        "--max-noise",
        type=_checked(_SEARCH, "max_noise"),
        default=10.0,
        help="largest noise multiplier searched; the smallest follows from --max-epsilon",
    )
    parser.add_argument(
        "--delta",
        type=_in_range(float, 0, 1, open_ends=True),
        default=None,
        help="delta for epsilon, in (0, 1) (default: min(1e-5, 1/(10 n)), n members)",
    )
    parser.add_argument(
        "--privacy-game",
        choices=["membership", "population"],
        default="membership",
        help="the game the objective reads: membership (members vs holdout, what DP bounds) or "
        "population (the study's members vs external set)",
    )
    parser.add_argument(
        "--repeats",
        type=_checked(_MEASUREMENT, "repeats"),
        default=1,
        help="seeds each trial is measured over (1-20)",
    )
    parser.add_argument(
        "--reference-models",
        type=_checked(_MEASUREMENT, "reference_models"),
        default=4,
        help="K of the calibrated attack per trial (2-64); more: a stronger, slower attack",
    )
    parser.add_argument(
        "--audit-reference-models",
        type=_checked(_MEASUREMENT, "audit_reference_models"),
        default=16,
        help="K of the calibrated attack for the baseline (2-128)",
    )
    parser.add_argument(
        "--allow-weak-baseline",
        action="store_true",
        help="tune even when the non-private baseline does not learn (default: refuse)",
    )
    parser.add_argument(
        "--max-epsilon",
        type=_checked(_GUARANTEE, "max_epsilon"),
        default=10.0,
        help="no trial trains with a larger epsilon (smaller: more private); 'none' asks for no guarantee",
    )
    parser.add_argument(
        "--target-epsilon",
        type=_checked(_GUARANTEE, "target_epsilon"),
        default=None,
        help="calibrate every trial's noise to this epsilon and search the clipping norm only "
        "(default: search noise too)",
    )
    parser.add_argument(
        "--confirm-repeats",
        type=_checked(_GUARANTEE, "confirm_repeats"),
        default=3,
        help="fresh seeds the chosen point is measured again with (2-20)",
    )
    parser.add_argument(
        "--max-utility-loss",
        type=_checked(_GUARANTEE, "max_utility_loss"),
        default=None,
        help="recommend only points losing at most this much validation ROC-AUC, in [0, 1] (default: no limit)",
    )
    parser.add_argument(
        "--save-model",
        type=Path,
        default=None,
        metavar="DIR",
        help="train the recommended configuration once more and write model.keras and "
        "privacy.json to DIR (default: no final model)",
    )
    parser.add_argument(
        "--seed", type=_in_range(int, 0, 2**31 - 1), default=0, help="seed of the split, the models and the search"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the full result as JSON here")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the HTML report (figures and recommendation card) here",
    )
    parser.add_argument(
        "--csv",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the trials as CSV here: one row each, nested fields as dotted columns (the "
        "columns of GET /v1/jobs/{id}/trials?format=csv)",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dptune")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dptune", description="Recommend DP-SGD clipping and noise parameters.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    tune = sub.add_parser("tune", help="tune DP-SGD parameters for a CSV or Parquet data set")
    tune.add_argument("data", type=Path, help="the CSV (UTF-8) or Parquet file")
    tune.add_argument("--label", required=True, help="label column")
    tune.add_argument("--smiles", default=None, help="SMILES column: features become ECFP fingerprints")
    tune.add_argument("--split", default="random", help=_split_help())
    tune.add_argument("--hidden", default="50,10", help="hidden layer sizes, comma-separated")
    tune.add_argument(
        "--dropout",
        type=_checked(_MODEL, "dropout"),
        default=0.0,
        help="dropout rate after each hidden layer, in [0, 1)",
    )
    tune.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd", help="the optimizer (its DP variant)")
    tune.add_argument(
        "--learning-rate",
        type=_checked(_MODEL, "learning_rate"),
        default=None,
        help="learning rate (default: Keras', 0.01 for sgd, 0.001 for adam)",
    )
    tune.add_argument(
        "--epochs",
        type=_checked(_MODEL, "epochs"),
        default=10,
        help="passes over the members; more: more steps, so more noise for the same epsilon",
    )
    tune.add_argument(
        "--batch-size",
        type=_checked(_MODEL, "batch_size"),
        default=32,
        help="expected batch size (Poisson sampling at batch_size / n)",
    )
    tune.add_argument("--keras-json", type=Path, default=None, help="a model.to_json() file instead of an MLP")
    tune.add_argument(
        "--tune-on",
        type=Path,
        default=None,
        metavar="PROXY",
        help="search on this public or synthetic proxy (same columns); DATA is then read once, by "
        "the final training (needs --save-model)",
    )
    _add_search_options(tune, default_trials=25)

    demo = sub.add_parser("demo", help="run the built-in synthea-covid data set end to end")
    _add_search_options(demo, default_trials=20)

    _add_report_command(sub)
    _register_service_commands(sub)
    return parser


def _add_report_command(sub: argparse._SubParsersAction[_Parser]) -> None:
    report = sub.add_parser("report", help="write the HTML report of a `dptune tune --json` result")
    report.add_argument("result", type=Path, metavar="RESULT.json", help="a file `dptune tune --json` wrote")
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="the HTML file to write (default: RESULT with the suffix .html)",
    )
    report.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    """Validate the result file as a TuningResult and write its report; a bad file is one line and exit 2."""
    from pydantic import ValidationError

    from app.tuning.results import TuningResult

    output = args.output or args.result.with_suffix(".html")
    try:
        text = args.result.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"dptune: error: cannot read {args.result}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2
    try:
        result = TuningResult.model_validate_json(text)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        print(
            f"dptune: error: {args.result} is not a `dptune tune --json` result ({exc.error_count()} problem(s); "
            f"first: {where + ': ' if where else ''}{error['msg']})",
            file=sys.stderr,
        )
        return 2
    try:
        _write_report(result, output)
    except OSError as exc:
        print(f"dptune: error: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def _write_report(result: TuningResult, path: Path) -> None:
    from app.reports import render_report

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result), encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)


def _register_service_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    from app.service_cli import register

    register(sub)


def _quiet_libraries() -> None:
    for category, message in _LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args) or 0)
    from app.datasets.errors import DatasetError
    from app.tuning.errors import TuningError
    from app.tuning.model_spec import ModelSpecError

    try:
        args.measurement = _measurement_spec(args)  # bad options fail before any data is read
        args.guarantee = _guarantee_spec(args)
        _search_spec(args)
        if getattr(args, "tune_on", None) is not None and args.save_model is None:
            raise ValueError(
                "--tune-on needs --save-model DIR: with a proxy, the private data is read only by the final training"
            )
        if args.command == "tune":
            return _run_tune(args)
        return _run_demo(args)
    except TuningError as exc:
        print(f"dptune: error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    except (DatasetError, ModelSpecError, ValueError) as exc:
        print(f"dptune: error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # never a stack trace for odd input; its message may quote data, so only the type
        if os.environ.get("DPTUNE_DEBUG"):
            raise
        print(
            f"dptune: error: the input could not be processed ({type(exc).__name__}); "
            "set DPTUNE_DEBUG=1 for the traceback",
            file=sys.stderr,
        )
        return 1


def _search_spec(args: argparse.Namespace) -> SearchSpec:
    from pydantic import ValidationError

    from app.tuning.search import SearchSpec

    try:
        return SearchSpec(
            method=args.search,
            trials=args.trials,
            seconds=args.seconds,
            max_clip=args.max_clip,
            max_noise=args.max_noise,
            pruning=args.pruning,
        )
    except ValidationError as exc:
        raise ValueError(f"search options: {str(exc.errors()[0]['msg']).removeprefix('Value error, ')}") from None


def _run_tune(args: argparse.Namespace) -> int:
    from app.datasets import parse_split_option, prepare_dataset, read_table, validate_table
    from app.tuning.model_spec import ModelSpec

    hidden = [int(h) for h in args.hidden.split(",") if h.strip()] if args.hidden else []
    spec = ModelSpec(
        hidden=hidden,
        dropout=args.dropout,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        batch_size=args.batch_size,
        keras_json=args.keras_json.read_text() if args.keras_json else None,
    )
    search = _search_spec(args)
    split = parse_split_option(args.split)

    def load(path: Path) -> tuple[PreparedData, dict[str, Any]]:
        frame = read_table(path)
        validate_table(frame, args.label, args.smiles)
        started = time.perf_counter()
        data, report = prepare_dataset(
            frame, label=args.label, split=split, smiles_column=args.smiles, seed=args.seed
        )
        print(
            f"prepared {report.rows_used} rows of {path.name} in {time.perf_counter() - started:.1f} s: "
            f"{report.split_sizes}",
            file=sys.stderr,
        )
        return data, {"source": path.name, **report.model_dump(mode="json")}

    if args.tune_on is not None:
        data, info = load(args.tune_on)
        info["private_source"] = args.data.name
        return _tune_and_report(data, spec, search, args, info, final_data=lambda: load(args.data)[0])
    data, info = load(args.data)
    return _tune_and_report(data, spec, search, args, info)


# The demo's SGD learning rate. DP-SGD's clipped, noised steps are smaller than plain SGD's: at Keras' default
# 0.01 no DP trial within epsilon 10 learns the built-in cohort in 10 epochs (test AUC near 0.5), while at 0.1
# the baseline reaches test AUC 0.93 and DP at epsilon 3 keeps 0.72-0.78 (docs/engine.md).
DEMO_LEARNING_RATE = 0.1


def _run_demo(args: argparse.Namespace) -> int:
    from app.datasets import BUILTIN_DATASETS, prepare_dataset
    from app.tuning.model_spec import ModelSpec

    builtin = BUILTIN_DATASETS["synthea-covid"]
    frame = builtin.load(args.seed)
    data, report = prepare_dataset(frame, label=builtin.label, split=builtin.default_split, seed=args.seed)
    info = {"source": "builtin:synthea-covid", **report.model_dump(mode="json")}
    spec = ModelSpec(learning_rate=DEMO_LEARNING_RATE)
    print(
        f"synthea-covid (built-in, seed {args.seed}): {report.split_sizes}; MLP {spec.hidden}, SGD at learning "
        f"rate {DEMO_LEARNING_RATE:g}, {spec.epochs} epochs",
        file=sys.stderr,
    )
    return _tune_and_report(data, spec, _search_spec(args), args, info)


def _option_error(exc: ValidationError) -> ValueError:
    """A spec's first validation error, named by the CLI option it came from (--max-epsilon: ...)."""
    error = exc.errors()[0]
    where = f"--{str(error['loc'][0]).replace('_', '-')}: " if error["loc"] else ""
    return ValueError(f"{where}{error['msg']}")


def _guarantee_spec(args: argparse.Namespace) -> GuaranteeSpec:
    from pydantic import ValidationError

    from app.tuning.results import GuaranteeSpec

    try:
        return GuaranteeSpec(
            max_epsilon=args.max_epsilon,
            target_epsilon=args.target_epsilon,
            confirm_repeats=args.confirm_repeats,
            max_utility_loss=args.max_utility_loss,
        )
    except ValidationError as exc:
        raise _option_error(exc) from None


def _measurement_spec(args: argparse.Namespace) -> MeasurementSpec:
    from pydantic import ValidationError

    from app.tuning.results import MeasurementSpec

    try:
        return MeasurementSpec(
            privacy_game=args.privacy_game,
            repeats=args.repeats,
            reference_models=args.reference_models,
            audit_reference_models=args.audit_reference_models,
            allow_weak_baseline=args.allow_weak_baseline,
        )
    except ValidationError as exc:
        raise _option_error(exc) from None


def _tune_and_report(
    data: PreparedData,
    spec: ModelSpec,
    search: SearchSpec,
    args: argparse.Namespace,
    info: dict[str, Any],
    final_data: Callable[[], PreparedData] | None = None,
) -> int:
    """Tune on `data`; with --save-model, train the final model on `final_data()` (a proxy run: the private
    data, read here for the first and only time) or on `data`."""
    from app.tuning.accounting import default_delta
    from app.tuning.engine import check_baseline, run_baseline, space_for, tune

    if not 0.0 <= args.tradeoff <= 1.0:
        raise ValueError(f"--tradeoff must be in [0, 1], got {args.tradeoff}")
    measurement = args.measurement
    delta = default_delta(len(data.y_members)) if args.delta is None else args.delta
    space = space_for(search, args.guarantee, spec, len(data.y_members), delta)  # a bad budget fails here, fast
    noise = (
        f"noise calibrated to epsilon {args.guarantee.target_epsilon:g}: {space.fixed_noise:.4g}"
        if space.fixed_noise is not None
        else f"noise in [{space.min_noise:.4g}, {space.max_noise:.4g}]"
    )
    print(f"search space: clip in [{space.min_clip:g}, {space.max_clip:g}] (log scale), {noise}", file=sys.stderr)
    print(
        f"training the non-private baseline and {measurement.audit_reference_models} reference models ...",
        file=sys.stderr,
    )
    baseline = run_baseline(data, spec, measurement, args.seed, delta)
    print(
        f"baseline: test AUC {baseline.utility_test:.3f}, membership attack {baseline.games.membership.attack_accuracy:.3f}"
        + (
            f", population attack {baseline.games.population.attack_accuracy:.3f} (control "
            f"{baseline.games.population.reference_attack_accuracy:.3f})"
            if baseline.games.population
            else ""
        )
        + f" ({baseline.seconds:.1f} s)",
        file=sys.stderr,
    )
    check_baseline(baseline, measurement)

    def progress(trial: Trial, best: Trial, budget: int) -> None:
        total = budget if budget < 10**9 else "?"
        print(
            # "#i" is the trial's index, as in the JSON and the notes; "k/n" counts trials run.
            f"trial #{trial.index} ({trial.index + 1}/{total})  clip {trial.clip:6.3f} noise {trial.noise:6.3f}  "
            f"val AUC {trial.utility_validation:.3f} attack {trial.attack_accuracy:.3f} "
            f"eps {_eps(trial.epsilon)}  "
            f"| best #{best.index} objective {best.objective:+.4f}",
            file=sys.stderr,
            flush=True,
        )

    result = tune(
        data,
        spec,
        search,
        measurement=measurement,
        guarantee=args.guarantee,
        tradeoff=args.tradeoff,
        delta=delta,
        seed=args.seed,
        dataset_info=info,
        on_trial=progress,
        baseline=baseline,
        tuned_on="proxy" if final_data is not None else "private",
    )
    if args.save_model is not None and result.recommendation is not None:
        result = _final_model(result, spec, args, final_data() if final_data is not None else data)
    print(format_summary(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(result.model_dump_json(indent=2))
        print(f"wrote {args.json}", file=sys.stderr)
    if args.report:
        _write_report(result, args.report)
    if args.csv:
        _write_trials_csv(args.csv, result.trials, result.pruned_trials)
    return 0


def _write_trials_csv(path: Path, trials: Sequence[Trial], pruned: Sequence[PrunedTrial]) -> None:
    from app.tuning.trials_csv import result_trials_csv

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result_trials_csv(trials, pruned))
    print(f"wrote {path}", file=sys.stderr)


def _final_model(
    result: TuningResult,
    spec: ModelSpec,
    args: argparse.Namespace,
    data: PreparedData,
) -> TuningResult:
    from app.tuning.accounting import default_delta
    from app.tuning.final_model import final_training, save_final_model, train_final

    recommendation = result.recommendation
    assert recommendation is not None, "_tune_and_report trains a final model only for a recommendation"
    delta = default_delta(len(data.y_members)) if args.delta is None else args.delta
    config = final_training(recommendation.training, result.guarantee, spec, len(data.y_members), delta)
    print(f"training the final model once (clip {config.clip:.4g}, noise {config.noise:.4g}) ...", file=sys.stderr)
    tuned_on: TuneSource = "proxy" if "private_source" in result.dataset else "private"
    model, statement = train_final(data, spec, config, tuned_on)
    for path in save_final_model(args.save_model, model, statement):
        print(f"wrote {path}", file=sys.stderr)
    updated = recommendation.model_copy(update={"training": config})
    return result.model_copy(update={"final_model": statement, "recommendation": updated})


def format_summary(result: TuningResult) -> str:
    """The recommendation's headline first; then baseline against the recommendation, whose figures are the
    confirmation's means over fresh seeds with 95 % intervals; both games, the accountant's epsilon and bounds,
    and what the attacks prove."""
    from app.tuning.results import CALIBRATED_ATTACK

    b, r = result.baseline, result.recommendation
    c = r.confirmation if r else None
    lines = [r.headline if r else f"NO RECOMMENDATION: {result.no_recommendation_reason}."]
    rows = [
        ("", "baseline", "recommended"),
        ("clip", "-", f"{r.clip:.4g}" if r else "-"),
        ("noise multiplier", "0 (no DP)", f"{r.noise:.4g}" if r else "-"),
        (
            "AUC validation (selects)",
            _interval(b.utility_validation_interval)
            if b.utility_validation_interval
            else f"{b.utility_validation:.3f}",
            _interval(c.utility_validation) if c else _num(r.utility_validation if r else None),
        ),
        (
            "AUC test (reports)",
            _interval(b.utility_test_interval),
            _interval(c.utility_test) if c else (_interval(r.utility_test_interval) if r else "-"),
        ),
        ("utility loss (test)", "", _interval(c.utility_loss) if c else _num(r.utility_loss if r else None)),
        ("AUC logistic regression", _num(b.logistic_regression_utility_test), ""),
        (
            f"{result.measurement.privacy_game} game: attack (mean)",
            f"{b.attack_accuracy:.3f}",
            _interval(c.attack_accuracy) if c else _num(r.attack_accuracy if r else None),
        ),
        (
            "membership game: strongest",
            _strongest(b.games.membership.attacks),
            _strongest(r.games.membership.attacks) if r else "-",
        ),
        (
            f"  {CALIBRATED_ATTACK} TPR at 1% FPR",
            _interval(b.games.membership.attacks[CALIBRATED_ATTACK].tpr_at_1pct_fpr),
            _interval(r.games.membership.attacks[CALIBRATED_ATTACK].tpr_at_1pct_fpr) if r else "-",
        ),
        ("  epsilon lower bound", f"{b.epsilon_lower_bound:.3g}", f"{r.epsilon_lower_bound:.3g}" if r else "-"),
    ]
    if b.games.population is not None:
        rows += [
            (
                "population game: attack",
                _strongest(b.games.population.attacks),
                _strongest(r.games.population.attacks) if r and r.games.population else "-",
            ),
            (
                "  control (never saw members)",
                _strongest(b.games.population.reference_attacks),
                _strongest(r.games.population.reference_attacks) if r and r.games.population else "-",
            ),
        ]
    rows += [
        ("epsilon (PLD) / RDP", "inf", f"{_eps(r.epsilon)} / {_eps(r.epsilon_rdp)}" if r else "-"),
        ("attack accuracy bound", "1", _num(r.attack_accuracy_bound) if r else "-"),
        ("TPR bound at 1% FPR", "1", _num(r.tpr_bound_at_1pct_fpr) if r else "-"),
    ]
    width = max(len(row[0]) for row in rows)
    lines += [f"{a:<{width}}  {b_:>22}  {c_:>22}" for a, b_, c_ in rows]
    if r and c:
        lines.append(
            f"recommended figures: means over {c.repeats} fresh seeds (confirmation, K = {c.reference_models}"
            f"), 95 % t-intervals; the search trial #{r.index} measured it once"
        )
    s = result.splits
    lines.append(
        f"splits: members {s.members}, holdout {s.holdout}, validation {s.validation}, test {s.test}, "
        f"external {s.external if s.external is not None else '-'}"
    )
    lines.append(
        f"trials: {len(result.trials)}{f' (recommended: #{r.index}, {r.selection.method})' if r else ''}, "
        f"failed {len(result.failed_trials)}, pruned {len(result.pruned_trials)}, stopped by {result.stop_reason}, mode {result.mode}, trade-off "
        f"t = {result.tradeoff}, objective game {result.measurement.privacy_game}, delta = {result.delta:.3g}, "
        f"{result.seconds:.0f} s"
    )
    if r:
        t = r.training
        lines.append(
            f"training: clip {t.clip:.4g}, noise {t.noise:.4g}, {t.epochs} epochs, batch {t.batch_size}, "
            f"{t.optimizer} lr {t.learning_rate:g}, n {t.n}, q {t.sampling_rate:.4g}, {t.steps} steps, "
            f"epsilon {_eps(t.epsilon)} at delta {t.delta:.3g}"
        )
        lines.append(f"tuning cost: {r.tuning_cost}")
        lines += [f"note: {n}" for n in r.notes]
    if result.final_model is not None:
        lines.append(
            f"final model: trained once, epsilon {_eps(result.final_model.epsilon)} at delta "
            f"{result.final_model.delta:.3g} (privacy.json)"
        )
    return "\n".join(lines)


def _interval(e: Estimate) -> str:
    return f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"


def _strongest(attacks: dict[str, AttackScores]) -> str:
    name, scores = max(attacks.items(), key=lambda item: item[1].accuracy.value)
    return f"{_interval(scores.accuracy)} {name}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _eps(epsilon: float | None) -> str:
    return "inf" if epsilon is None else f"{epsilon:.3g}"


if __name__ == "__main__":
    raise SystemExit(main())
