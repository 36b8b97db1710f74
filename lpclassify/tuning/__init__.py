"""Choosing a classifier from labelled examples: ``lpclassify tune``'s logic (no printing, no files).

* :mod:`.verbalizers` -- each label's candidate completions and the sets of them to try;
* :mod:`.search` -- settings, cross-validated selection and the nested estimate, in numpy;
* :mod:`.run` -- :func:`tune`: one model pass per prompt, then the search; the chosen config.
"""

from .run import DEFAULT_FOLDS, TuneResult, chosen_config, tune
from .search import OuterFold, PromptScores, Score, Search, Setting, nested_estimate

__all__ = ["DEFAULT_FOLDS", "OuterFold", "PromptScores", "Score", "Search", "Setting", "TuneResult",
           "chosen_config", "nested_estimate", "tune"]
