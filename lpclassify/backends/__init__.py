"""Model backends: the token-level engine behind the classifier."""

from .base import Backend, ScoreResult

__all__ = ["Backend", "ScoreResult"]
