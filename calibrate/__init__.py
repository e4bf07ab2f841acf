"""calibrate: temperature scaling and precision-targeted decision thresholds.

>>> import calibrate
>>> cal = calibrate.fit(val_logits, val_labels, precision=0.9, confidence=0.95)
>>> cal.predict(test_logits)          # class ids, -1 = abstain
>>> cal.save("thresholds.json"); cal = calibrate.load("thresholds.json")

Importing this package never imports torch, scikit-learn, matplotlib or dask.
"""

from .artifact import Calibrator, load
from .errors import CalibrateError
from .evaluation import evaluate
from .fitting import fit
from .sources import open_scores

__version__ = "0.1.0"
__all__ = ["fit", "load", "evaluate", "open_scores", "Calibrator", "CalibrateError"]
