"""True labels as indices into a config's labels: the one conversion, and its one error.

>>> label_indices(["b", 0, "a"], ["a", "b"]).tolist()
[1, 0, 0]
>>> label_indices([0, 1], ["pos", "neg"], label_order=["neg", "pos"]).tolist()  # the dataset's own order
[1, 0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import InputError


def label_indices(labels: Sequence[object] | np.ndarray, names: Sequence[str],
                  label_order: Sequence[str] | None = None) -> np.ndarray:
    """Each label as an index into ``names``: a label name as it is, or an integer ``i``, meaning
    ``label_order[i]`` when given (the dataset's own order), else ``names[i]`` (the config's order).

    InputError, saying which item and what was expected, for anything else.
    """
    if label_order is not None:
        unknown = [name for name in label_order if name not in names]
        if unknown:
            raise InputError(f"label order names {unknown}, which the config does not have ({', '.join(names)})")
        labels = [label_order[label] if _is_index(label) and 0 <= label < len(label_order) else label  # type: ignore[operator]
                  for label in labels]
    position = {name: i for i, name in enumerate(names)}
    out = np.empty(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        if isinstance(label, str) and label in position:
            out[i] = position[label]
        elif _is_index(label) and 0 <= label < len(names):  # type: ignore[operator]
            out[i] = int(label)  # type: ignore[call-overload]
        else:
            raise InputError(f"label {label!r} (item {i}) is neither a label name ({', '.join(names)}) "
                             f"nor an index 0..{len(names) - 1}")
    return out


def _is_index(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
