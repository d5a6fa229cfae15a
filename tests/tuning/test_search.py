import pytest
from pydantic import ValidationError

from app.tuning.search import SearchSpec, grid_points, random_points, suggest


def _bowl(point: tuple[float, float]) -> float:
    clip, noise = point
    return -((clip - 2.0) ** 2) - (noise - 6.0) ** 2


def test_default_grid_is_the_studys_400_points() -> None:
    points = grid_points(SearchSpec(method="grid"))
    assert len(points) == 400
    assert points[0] == (0.1, 0.0)
    assert max(c for c, _ in points) == pytest.approx(9.6) and max(z for _, z in points) == pytest.approx(9.5)
    assert SearchSpec(method="grid", trials=1000).budget() == 400


def test_grid_and_random_are_positional_and_deterministic() -> None:
    spec = SearchSpec(method="random", trials=5)
    first = [suggest(spec, [], [(0.0, 0.0)] * i, seed=3) for i in range(5)]
    assert first == random_points(spec, 5, seed=3)
    assert suggest(spec, [], [], seed=4) != first[0]
    grid = SearchSpec(method="grid", max_clip=1.1, max_noise=1.0, grid_step=0.5)
    assert suggest(grid, [], [], 0) == (0.1, 0.0)
    assert suggest(grid, [((0.1, 0.0), 0.0)] * 4, [], 0) is None


def test_bayes_rebuilds_the_same_suggestion_from_stored_trials() -> None:
    spec = SearchSpec(trials=14, initial_points=5)
    observed: list[tuple[tuple[float, float], float]] = []
    for _ in range(12):
        point = suggest(spec, observed, [], seed=0)
        assert point is not None
        assert spec.min_clip <= point[0] <= spec.max_clip and 0 <= point[1] <= spec.max_noise
        # Stateless: asking again from the same stored trials gives the same point.
        assert suggest(spec, observed, [], seed=0) == point
        observed.append((point, _bowl(point)))
    best = max(observed, key=lambda o: o[1])
    initial_best = max(observed[:5], key=lambda o: o[1])
    assert best[1] >= initial_best[1]
    assert best[1] > -6.0  # the GP steps towards the optimum at (2, 6)


def test_constant_liar_spreads_parallel_suggestions() -> None:
    spec = SearchSpec(trials=20, initial_points=3)
    observed = []
    for _ in range(5):
        point = suggest(spec, observed, [], seed=1)
        observed.append((point, _bowl(point)))
    first = suggest(spec, observed, [], seed=1)
    second = suggest(spec, observed, [first], seed=1)
    assert first != second


@pytest.mark.parametrize(
    "bad",
    [{"trials": 0}, {"max_clip": 0}, {"min_clip": 5, "max_clip": 1}, {"trials": None}, {"method": "anneal"},
     {"max_noise": -1}, {"max_clip": float("nan")}],
)
def test_invalid_search_specs_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        SearchSpec(**bad)


def test_grid_size_is_counted_not_listed() -> None:
    spec = SearchSpec(method="grid", max_clip=3.0, max_noise=2.0, grid_step=0.25)
    assert spec.grid_size() == len(grid_points(spec)) == 12 * 8
    assert SearchSpec(method="grid").grid_size() == 400
    with pytest.raises(ValidationError, match="grid would have over"):
        SearchSpec(method="grid", grid_step=1e-5)
