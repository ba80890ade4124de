"""Seed strength at implant: the plausibility range and the calibration → implant decay rule.

One rule for the command line and the plan document (Qt-free):

* A seed's air-kerma strength S_K, both as calibrated and as decayed to the implant date, lies in
  :data:`PLAUSIBLE_STRENGTH_U` (0.05-10 U: I-125 seeds in clinical use are about 0.2-1.3 U; the
  range only catches unit and typing errors, e.g. mCi given as U ×1000, or a wrong year).
* The implant may precede the calibration (reference) date by at most
  :data:`MAX_IMPLANT_BEFORE_CALIBRATION_DAYS` (vendors quote strength at a reference date that is
  often the planned implant day; an implant a little earlier is normal, a year earlier is a typo:
  factor ×72).
* The implant may follow the calibration by at most :data:`MAX_IMPLANT_AFTER_CALIBRATION_DAYS`
  (three half-lives, 178 d: the seeds keep 1/8 of their strength; more is a wrong date, e.g.
  24 years gives a factor of 1e-44, i.e. ~0 Gy).

Dates without a time are taken at 00:00. T½ = 59.40 d (:mod:`dose.units`).

API::

    decay_between(calibration, implant) -> Decay          # raises InputError outside the rule
    strengths_at_implant(strengths_u, calibration, implant, where=...) -> (strengths (N,), Decay)
    check_strengths_u(strengths_u, where, what="seed strength")   # raises InputError
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dose.errors import InputError
from dose.units import I125_HALF_LIFE_DAYS, I125_HALF_LIFE_H, decay_factor

__all__ = [
    "MAX_IMPLANT_AFTER_CALIBRATION_DAYS",
    "MAX_IMPLANT_BEFORE_CALIBRATION_DAYS",
    "PLAUSIBLE_STRENGTH_U",
    "Decay",
    "check_strengths_u",
    "decay_between",
    "strengths_at_implant",
]

#: Plausible air-kerma strength per I-125 seed (U), inclusive.
PLAUSIBLE_STRENGTH_U = (0.05, 10.0)
#: An implant may be this many days before the calibration date (decay factor ≤ 1.085).
MAX_IMPLANT_BEFORE_CALIBRATION_DAYS = 7.0
#: An implant may be this many days after the calibration date (3 T½: decay factor ≥ 1/8).
MAX_IMPLANT_AFTER_CALIBRATION_DAYS = 3.0 * I125_HALF_LIFE_DAYS


def _as_datetime(d: date | datetime) -> datetime:
    return d if isinstance(d, datetime) else datetime(d.year, d.month, d.day)


@dataclass(frozen=True)
class Decay:
    """Decay of I-125 from the calibration to the implant date: ``factor`` = exp(−λ·Δt)."""

    calibration: datetime
    implant: datetime
    elapsed_days: float  # implant − calibration (negative: implant before calibration)
    factor: float
    half_life_days: float = I125_HALF_LIFE_DAYS

    def describe(self) -> str:
        """One line, e.g. ``decay from calibration 2026-01-01 to implant 2026-03-01 (+59.0 d,
        T1/2 59.40 d): factor 0.50290``."""

        def iso(d: datetime) -> str:
            return d.date().isoformat() if d.time() == datetime.min.time() else d.isoformat()

        return (
            f"decay from calibration {iso(self.calibration)} to implant {iso(self.implant)} "
            f"({self.elapsed_days:+.1f} d, T1/2 {self.half_life_days:.2f} d): "
            f"factor {self.factor:.5f}"
        )


def decay_between(calibration: date | datetime, implant: date | datetime) -> Decay:
    """The :class:`Decay` from ``calibration`` to ``implant``; InputError outside the date rule
    (module docstring), naming both dates, the gap and the factor it would give."""
    cal, imp = _as_datetime(calibration), _as_datetime(implant)
    elapsed_d = (imp - cal).total_seconds() / 86400.0
    factor = decay_factor(cal, imp, half_life_h=I125_HALF_LIFE_H)
    if elapsed_d < -MAX_IMPLANT_BEFORE_CALIBRATION_DAYS:
        raise InputError(
            f"implant date {imp.date().isoformat()} is {-elapsed_d:.0f} days before the "
            f"calibration date {cal.date().isoformat()} (at most "
            f"{MAX_IMPLANT_BEFORE_CALIBRATION_DAYS:g} days allowed): the decay factor would be "
            f"{factor:.3g}; check the dates"
        )
    if elapsed_d > MAX_IMPLANT_AFTER_CALIBRATION_DAYS:
        raise InputError(
            f"implant date {imp.date().isoformat()} is {elapsed_d:.0f} days after the "
            f"calibration date {cal.date().isoformat()} (at most "
            f"{MAX_IMPLANT_AFTER_CALIBRATION_DAYS:.0f} days = 3 half-lives allowed): the seeds "
            f"would keep {factor:.3g} of their strength; check the dates"
        )
    return Decay(cal, imp, elapsed_d, factor)


def check_strengths_u(strengths_u: ArrayLike, where: str, *, what: str = "seed strength") -> None:
    """InputError unless every value is finite and inside :data:`PLAUSIBLE_STRENGTH_U`.

    strengths_u: (N,) U. ``where`` starts the message (a file and line, or an option)."""
    s = np.asarray(strengths_u, dtype=np.float64).reshape(-1)
    lo, hi = PLAUSIBLE_STRENGTH_U
    bad = ~np.isfinite(s) | (s < lo) | (s > hi)
    if np.any(bad):
        v = float(s[int(np.argmax(bad))])
        raise InputError(
            f"{where}: {what} {v:g} U is outside the plausible range {lo:g}-{hi:g} U for I-125"
        )


def strengths_at_implant(
    strengths_u: ArrayLike,
    calibration: date | datetime | None,
    implant: date | datetime | None,
    *,
    where: str = "source strength",
) -> tuple[NDArray[np.float64], Decay | None]:
    """Calibrated strengths (N,) U → (strengths at implant (N,) U, the Decay or None).

    Without dates (both None) the strengths are taken as at implant. Checks, in order: both or
    neither date; the calibrated strengths; the date rule; the decayed strengths."""
    s = np.asarray(strengths_u, dtype=np.float64).reshape(-1)
    if (calibration is None) != (implant is None):
        raise InputError("give both the calibration date and the implant date, or neither")
    check_strengths_u(s, where)
    if calibration is None or implant is None:
        return s.copy(), None
    decay = decay_between(calibration, implant)
    at_implant = s * decay.factor
    lo, hi = PLAUSIBLE_STRENGTH_U
    bad = ~np.isfinite(at_implant) | (at_implant < lo) | (at_implant > hi)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise InputError(
            f"{where}: strength at implant {at_implant[i]:.3g} U ({s[i]:g} U × decay factor "
            f"{decay.factor:.4g}) is outside the plausible range {lo:g}-{hi:g} U for I-125; "
            "check the strength and the dates"
        )
    return at_implant, decay
