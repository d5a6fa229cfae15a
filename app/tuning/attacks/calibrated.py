"""Label-free membership scores: the loss threshold (Yeom et al. 2018) and RMIA (Zarifzadeh et al. 2024).

RMIA compares the target's probability of a record's true label with what reference models give it:
ratio(x) = Pr(y_x | x, target) / Pr(y_x), where Pr(y_x) is the mean over K reference models trained like the
target on random halves of the attack pool (so x is in about half of them: the paper's online setting).
The score of x is the share of population records z that x dominates, ratio(x) / ratio(z) >= gamma.
For a fixed population the score is monotone in ratio(x), so its ROC equals that of ratio(x); the population
makes the score a calibrated probability, which the accuracy threshold uses.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Probabilities are floored here before dividing: a model that is certain of the wrong label gives 0.
PROBABILITY_FLOOR = 1e-12
RMIA_GAMMA = 1.0


def true_label_probability(proba: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    probability: npt.NDArray[np.float64] = np.maximum(proba[np.arange(len(labels)), labels], PROBABILITY_FLOOR)
    return probability


def loss_scores(proba: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """-(cross-entropy loss) of each record: members tend to have a lower loss."""
    return np.log(true_label_probability(proba, labels))


def rmia_scores(
    target: npt.NDArray[np.float64],
    references: npt.NDArray[np.float64],
    population_target: npt.NDArray[np.float64],
    population_references: npt.NDArray[np.float64],
    gamma: float = RMIA_GAMMA,
    break_ties: bool = False,
) -> npt.NDArray[np.float64]:
    """RMIA scores of records from true-label probabilities: `target` (n,), `references` (K, n), and the same
    for the population records z (m,) and (K, m).

    A population of m records gives only m + 1 distinct scores: every record that dominates all of z scores 1,
    which hides the order among the strongest candidates, exactly where low-FPR readings look. `break_ties`
    orders records within a score by ratio(x) itself (the score moves by less than 1 / m and stays in [0, 1]),
    the order the score is monotone in anyway."""
    ratio_x = target / np.maximum(references.mean(axis=0), PROBABILITY_FLOOR)
    ratio_z = population_target / np.maximum(population_references.mean(axis=0), PROBABILITY_FLOOR)
    ordered = np.sort(ratio_z)
    # Share of z with ratio(x) / ratio(z) >= gamma, i.e. ratio(z) <= ratio(x) / gamma.
    dominated = np.searchsorted(ordered, ratio_x / gamma, side="right")
    scores: npt.NDArray[np.float64]
    if not break_ties:
        scores = dominated / len(ordered)
        return scores
    rank = np.argsort(np.argsort(ratio_x, kind="stable"), kind="stable")  # 0 .. n-1
    scores = (dominated + (rank + 1) / (len(ratio_x) + 1)) / (len(ordered) + 1)
    return scores
