"""The input of every trial: feature matrices of the three splits, already encoded."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PreparedData:
    """Members train the target model, test measures utility, nonmembers are the attacker's outsiders.

    Features are float32 (n, d); labels are int64 class indices 0..n_classes-1.
    """

    x_members: np.ndarray
    y_members: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_nonmembers: np.ndarray
    y_nonmembers: np.ndarray
    n_classes: int
    feature_names: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)

    @property
    def n_features(self) -> int:
        return int(self.x_members.shape[1])

    def split_sizes(self) -> dict[str, int]:
        return {
            "members": len(self.y_members),
            "test": len(self.y_test),
            "nonmembers": len(self.y_nonmembers),
        }
