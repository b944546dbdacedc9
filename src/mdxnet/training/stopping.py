"""Early stopping on the validation score, as the authors' trainer does it.

kuielab/mdx-net@Leaderboard_A trains every model with PyTorch Lightning 1.3.8's EarlyStopping callback on val/sdr
(configs/callbacks/default.yaml: mode max, min_delta 0.05; patience 50 from configs/experiment/
multigpu_default.yaml). Its rule, read in that release's pytorch_lightning/callbacks/early_stopping.py: a score
that is not finite stops at once; a score above the best so far by more than min_delta is the new best and
resets the count; any other adds one, and the run stops when the count reaches `patience` (counted in
validations). `patience` None: never stops (the fixed step budget only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class EarlyStopping:
    patience: int | None
    min_delta: float
    best: float = -math.inf
    wait: int = 0
    stopped: bool = False

    def update(self, score: float) -> bool:
        """Take one validation score; True when training should stop now."""
        if self.patience is None:
            return False
        if not math.isfinite(score):
            self.stopped = True
        elif score - self.min_delta > self.best:
            self.best, self.wait = score, 0
        else:
            self.wait += 1
            self.stopped = self.wait >= self.patience
        return self.stopped

    def state(self) -> dict:
        """What a resumed run needs (weights_only-loadable values)."""
        return {"best": self.best, "wait": self.wait, "stopped": self.stopped}

    def load(self, state: dict | None) -> None:
        if state:
            self.best, self.wait, self.stopped = float(state["best"]), int(state["wait"]), bool(state["stopped"])

    def describe(self) -> str:
        return (f"stopped early: {self.wait} validations without an improvement above {self.min_delta:g} dB "
                f"(patience {self.patience}; best {self.best:.3f} dB)")
