"""How long a lab run would take on this server, said before Start (issue 37: the paper
preset held the only training slot for hours, and the page never said it would)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from explorer.models import get_model_spec
from explorer.settings import JOB_SECONDS
from explorer.training.recipe import TrainConfig
from explorer.words import spoken_duration

# What a lab step costs before the run, for the page's estimate (issue 37: the paper preset
# held the only slot for hours). Fitted to the 2-core class laptop's recorded runs in
# pretrained/runs (a least-squares fit of the relative error over six of them, from the class
# demo's 0.27 s per step to plain-20 + plain-56 at the paper's width, 2.0 s): a fixed cost per
# weighted layer and step (Python and kernel launches: what narrow nets spend their time on)
# plus one per multiply-add of the 3×3 convolutions, forward and backward (3 × 9·C²·H·W per
# layer and image). Every one of the six came within 21% of the fit.
SECONDS_PER_LAYER_STEP = 1.04e-3
SECONDS_PER_GMAC = 0.0269  # about 37 GMAC/s


def step_cost(config: TrainConfig) -> tuple[int, float]:
    """(weighted layers, GMACs) of one training step of ``config``: every net of every seed."""
    layers = sum(get_model_spec(name).depth - 2 for name in config.models) * config.repeat
    return layers, 27 * config.batch_size * layers * config.width ** 2 * config.image_size ** 2 / 1e9


class StepTimes:
    """Seconds a lab step takes on this server, estimated before the run: the laptop's fit
    above, scaled by how this server's own lab runs compared with it (the median ratio of the
    last few), so a faster server soon gets estimates of its own."""

    MIN_STEPS = 20  # a run shorter than this says little about the pace

    def __init__(self, kept: int = 5):
        self._lock = threading.Lock()
        self._ratios: deque[float] = deque(maxlen=kept)

    @staticmethod
    def fitted(config: TrainConfig) -> float:
        layers, gmacs = step_cost(config)
        return SECONDS_PER_LAYER_STEP * layers + SECONDS_PER_GMAC * gmacs

    def observe(self, config: TrainConfig, seconds_per_step: float) -> None:
        fitted = self.fitted(config)
        if fitted > 0 and seconds_per_step > 0:
            with self._lock:
                self._ratios.append(seconds_per_step / fitted)

    def step_s(self, config: TrainConfig) -> float:
        with self._lock:
            ratios = sorted(self._ratios)
        return self.fitted(config) * (ratios[len(ratios) // 2] if ratios else 1.0)


STEP_TIMES = StepTimes()


@dataclass(frozen=True)
class RunEstimate:
    """How long a lab run would take here, against the server's time limit (said before Start)."""

    steps: int
    step_s: float
    limit_s: float | None  # None: no limit (the CLI)

    @property
    def seconds(self) -> float:
        return self.steps * self.step_s

    @property
    def over_limit(self) -> bool:
        return self.limit_s is not None and self.seconds > self.limit_s

    def text(self) -> str:
        """"About 2 h here (…)" and, past the limit, where the limit would stop it."""
        pace = f"{self.step_s:.2g}" if self.step_s < 10 else f"{self.step_s:,.0f}"
        text = (f"This run: about {spoken_duration(self.seconds)} on this server ({self.steps:,} steps at about "
                f"{pace} s each, estimated from the nets' sizes).")
        if not self.over_limit:
            return text
        within = max(1, int(self.limit_s / self.step_s))
        return (text + f" The server stops a job after {spoken_duration(self.limit_s)} ({JOB_SECONDS.env} = "
                f"{self.limit_s:,.0f} s), so it would stop at about step {within:,}: its steps are kept, and Resume "
                "continues it, queueing again. Fewer steps, nets, or a smaller width or image size fit in one go; "
                "`python -m explorer train` has no limit.")


def estimate_run(config: TrainConfig, limit_s: float | None, times: StepTimes = STEP_TIMES) -> RunEstimate:
    """The estimate for ``config`` under a time limit of ``limit_s`` seconds (None: none)."""
    return RunEstimate(config.steps, times.step_s(config), limit_s)
