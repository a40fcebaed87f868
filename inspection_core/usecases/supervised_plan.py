"""What a supervised family (the classifier) will train, validate and test on.

The classifier learns from labelled good AND defective images, so it takes
some of the defective test images for training; what it is measured on is
the rest (the held-out split). This module says so before training, in the
CLI and the Train view, with the counts, and warns when the held-out split
is too small for its figures to be trusted. It reads folders only (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..data.dataset import DatasetIndex
from ..data.splits import supervised_split

#: fewer held-out images of a class than this: one misjudged image moves that
#: class's rate by more than 5 points, so balanced accuracy is rough
MIN_TRUSTED_PER_CLASS = 20


@dataclass(frozen=True)
class SplitPlan:
    """Counts of good and defective images per split."""

    train_good: int
    train_defect: int
    val_good: int
    val_defect: int
    test_good: int
    test_defect: int

    @property
    def trusted(self) -> bool:
        return min(self.test_good, self.test_defect) >= MIN_TRUSTED_PER_CLASS

    def lines(self) -> list[str]:
        """The plan in words: what trains, what chooses the epoch, what is held out; a warning if it is small."""
        out = [f"the classifier learns from labelled images: {self.train_good} good and {self.train_defect} "
               f"defective for training, {self.val_good} good and {self.val_defect} defective to choose the "
               f"best epoch, and {self.test_good} good and {self.test_defect} defective held out to test it"]
        if not self.trusted:
            step = 100.0 / max(1, min(self.test_good, self.test_defect))
            out.append(f"warning: the held-out split is small ({self.test_good} good, {self.test_defect} defective): "
                       f"one misjudged image moves its rates by {step:.0f} points, so treat its AUROC and balanced "
                       "accuracy as rough; more labelled images make them trustworthy")
        return out


def plan_supervised(index: DatasetIndex, seed: int = 0, hold_out_train_good: bool = True) -> SplitPlan | None:
    """The split a supervised training of ``index`` will make, or None when
    the folder has no defective images (training will refuse it)."""
    try:
        sp = supervised_split(index, seed=seed, hold_out_train_good=hold_out_train_good)
    except ValueError:
        return None
    s = sp.summary()
    return SplitPlan(s["train"]["n_good"], s["train"]["n_defect"], s["val"]["n_good"], s["val"]["n_defect"],
                     s["test"]["n_good"], s["test"]["n_defect"])


__all__ = ["MIN_TRUSTED_PER_CLASS", "SplitPlan", "plan_supervised"]
