"""The input of every trial: feature matrices of the splits, already encoded."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from app.tuning.results import SplitSizes


@dataclass(frozen=True)
class PreparedData:
    """members train the target model; holdout are in-distribution nonmembers (drawn from the members'
    population, never trained on); validation selects parameters; test only reports them; external is the
    attacker's set from elsewhere (the study's other cluster or Butina group), None when the split has none.

    Features are float32 (n, d); labels are int64 class indices 0..n_classes-1.
    """

    x_members: npt.NDArray[np.float32]
    y_members: npt.NDArray[np.int64]
    x_holdout: npt.NDArray[np.float32]
    y_holdout: npt.NDArray[np.int64]
    x_validation: npt.NDArray[np.float32]
    y_validation: npt.NDArray[np.int64]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int64]
    x_external: npt.NDArray[np.float32] | None
    y_external: npt.NDArray[np.int64] | None
    n_classes: int
    feature_names: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)

    @property
    def n_features(self) -> int:
        return int(self.x_members.shape[1])

    @property
    def has_external(self) -> bool:
        return self.y_external is not None and len(self.y_external) > 0

    def split_sizes(self) -> SplitSizes:
        return SplitSizes(
            members=len(self.y_members),
            holdout=len(self.y_holdout),
            validation=len(self.y_validation),
            test=len(self.y_test),
            external=len(self.y_external) if self.y_external is not None else None,
        )
