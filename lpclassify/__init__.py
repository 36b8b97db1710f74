"""lpclassify: zero-shot text classification from language-model log-probabilities.

>>> from lpclassify import Classifier                                   # doctest: +SKIP
>>> Classifier.from_config("configs/sentiment.yaml").classify("Loved it").label  # doctest: +SKIP
'positive'
"""

from .classifier import Classifier, RawScores
from .config import Config, load_config
from .decision import Prediction
from .errors import CapacityError, ConfigError, InputError, LpclassifyError, ModelError
from .scoring import CompletionScore

__version__ = "0.1.0"

__all__ = [
    "CapacityError",
    "Classifier",
    "CompletionScore",
    "Config",
    "ConfigError",
    "InputError",
    "LpclassifyError",
    "ModelError",
    "Prediction",
    "RawScores",
    "load_config",
]
