"""What the user chooses for automatic planning (:func:`planner.optimise.autoplan.autoplan`):
the options of ``seedplan autoplan`` and the Autoplan dialog, checked on construction.

Its own module so that the planner's parts (:mod:`planner.optimise.setup`,
:mod:`planner.optimise.outcome`) read the options without importing the entry point that
uses them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from dose.errors import InputError
from planner.optimise.robustness import NeedleErrorModel

__all__ = ["AutoplanOptions"]


@dataclass(frozen=True)
class AutoplanOptions:
    """What the user chooses (CLI flags of ``seedplan autoplan``); lengths mm, doses Gy."""

    pd_gy: float | None = None  # default: the plan's prescription
    approach: str | tuple[float, float, float] = "posterolateral"
    parallel: bool = False
    bone: Literal["avoid", "allow"] = "allow"
    no_pass: tuple[str, ...] = ()
    no_pass_margin_mm: float = 5.0
    keep_needles: bool = False
    seeds_only: bool = False
    needle_spacing_mm: float = 10.0
    seed_spacing_mm: float = 10.0
    slot_margin_mm: float = 0.0
    slot_step_mm: float | None = None  # phase resolution of the seed slots (default spacing / 2)
    max_needles: int = 30
    cord_limit_gy: float | None = None  # default: the plan's cord D0.1cc goal, else 45 Gy
    v100_goal_percent: float = 95.0
    needle_clearance_mm: float = 2.0
    method: Literal["greedy", "milp", "auto"] = "greedy"
    robust: bool = False
    robust_samples: int = 30
    robust_spread: float = 1.0  # SDs of the sampled cord dose added per slot (robust mode)
    error_model: NeedleErrorModel = field(default_factory=NeedleErrorModel)
    time_budget_s: float = 10.0
    max_rounds: int = 4
    v100_bound: bool = False  # also compute the upper bound on V100 (planner.optimise.bound)
    polish: bool = True  # local search on voxel counts after the selection (not with robust)
    formalism: str = "2d"

    def __post_init__(self) -> None:
        if not (isinstance(self.max_needles, int) and 1 <= self.max_needles <= 200):
            raise InputError(f"--max-needles must be 1-200, got {self.max_needles}")
        if self.cord_limit_gy is not None and not (
            math.isfinite(self.cord_limit_gy) and self.cord_limit_gy > 0
        ):
            raise InputError(f"the cord limit must be a positive dose, got {self.cord_limit_gy}")
        if not (math.isfinite(self.time_budget_s) and self.time_budget_s > 0.0):
            raise InputError(f"the time budget must be a positive time, got {self.time_budget_s}")
        if not 50.0 <= self.v100_goal_percent <= 100.0:
            raise InputError(f"the V100 goal must be 50-100 %, got {self.v100_goal_percent}")
