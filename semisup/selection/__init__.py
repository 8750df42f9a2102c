"""Label next: which unlabeled trailers a person should label, and how many labels that saves.

:mod:`.strategies` ranks an unlabeled pool (random, uncertainty, diversity,
mix, rare, plug-ins); :mod:`.select` scores a run's pool and writes the CSV to
fill in (``semisup select``); :mod:`semisup.data.annotate` merges it back
(``semisup data label``); :mod:`.simulate` measures mAP against labels on a
dataset whose hidden labels are known (``semisup select-simulate``).
"""

from semisup.selection.strategies import (Pool, Ranking, Strategy, get_strategy, k_center_greedy, register_strategy,
                                          strategy_catalogue)

__all__ = ["Pool", "Ranking", "Strategy", "get_strategy", "k_center_greedy", "register_strategy",
           "strategy_catalogue"]
