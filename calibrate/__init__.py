"""calibrate: temperature scaling and precision-targeted decision thresholds.

>>> import calibrate
>>> cal = calibrate.fit(val_logits, val_labels, precision=0.9, confidence=0.95)
>>> cal.predict(test_logits)          # class ids, -1 = abstain
>>> cal.save("thresholds.json"); cal = calibrate.load("thresholds.json")

Importing this package is cheap: its modules (and numpy and scipy behind
them) load on first use, and torch, scikit-learn, matplotlib and dask only
when an object of theirs is handed over or an integration module is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import CalibrateError

__version__ = "0.2.0"
__all__ = ["fit", "load", "evaluate", "open_scores", "Calibrator", "CalibrateError"]

#: Public names and the module that defines each.
_EXPORTS = {"fit": "fitting", "load": "artifact", "Calibrator": "artifact",
            "evaluate": "evaluation", "open_scores": "sources"}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .artifact import Calibrator, load
    from .evaluation import evaluate
    from .fitting import fit
    from .sources import open_scores


def __getattr__(name: str) -> Any:
    """Load a public name, or a submodule (``calibrate.metrics``), on first use."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    else:
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
