"""lpclassify: zero-shot text classification from language-model log-probabilities.

>>> from lpclassify import Classifier                                   # doctest: +SKIP
>>> Classifier.from_config("sentiment").classify("Loved it").label  # doctest: +SKIP
'positive'
"""

from .classifier import Classifier
from .config import Config, load_config
from .decision import Prediction
from .errors import CapacityError, ConfigError, InputError, LpclassifyError, MissingDependencyError, ModelError
from .explanation import Explanation
from .scores import CompletionScore, RawScores

__version__ = "0.1.0"

__all__ = [
    "CapacityError",
    "Classifier",
    "CompletionScore",
    "Config",
    "ConfigError",
    "Explanation",
    "InputError",
    "LpclassifyError",
    "MissingDependencyError",
    "ModelError",
    "Prediction",
    "RawScores",
    "load_config",
]
