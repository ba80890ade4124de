"""Physical constants and unit conversions for I-125 permanent implants.

Sources: T½ = 59.40 d (AAPM TG-43U1, Rivard et al. 2004; also TPOR, matRad); 1.270 U/mCi apparent
activity → air-kerma strength for I-125 (TG-43 1995 report p. 218, as used in TPOR-mat
``mkSeedDose.m``). 1 U = 1 µGy m² h⁻¹ = 1 cGy cm² h⁻¹.
"""

from __future__ import annotations

import math
from datetime import date, datetime

__all__ = [
    "I125_DECAY_CONSTANT_PER_H",
    "I125_HALF_LIFE_DAYS",
    "I125_HALF_LIFE_H",
    "I125_MEAN_LIFE_H",
    "U_PER_MCI_I125",
    "decay_factor",
    "mci_to_u",
    "total_dose_gy_from_initial_rate",
    "u_to_mci",
]

I125_HALF_LIFE_DAYS = 59.40
I125_HALF_LIFE_H = I125_HALF_LIFE_DAYS * 24.0
I125_DECAY_CONSTANT_PER_H = math.log(2.0) / I125_HALF_LIFE_H
#: τ = T½ / ln 2 ≈ 2056.7 h: the permanent-implant total dose is D∞ = Ḋ₀ · τ.
I125_MEAN_LIFE_H = 1.0 / I125_DECAY_CONSTANT_PER_H
U_PER_MCI_I125 = 1.270


def mci_to_u(activity_mci: float) -> float:
    """Apparent activity (mCi) → air-kerma strength S_K (U), I-125."""
    return activity_mci * U_PER_MCI_I125


def u_to_mci(strength_u: float) -> float:
    """Air-kerma strength S_K (U) → apparent activity (mCi), I-125."""
    return strength_u / U_PER_MCI_I125


def decay_factor(
    calibration: date | datetime,
    implant: date | datetime,
    *,
    half_life_h: float = I125_HALF_LIFE_H,
) -> float:
    """Fraction of the calibrated strength left at the implant time, exp(−λ·Δt).

    Dates without a time are taken at 00:00. An implant before calibration gives a factor > 1.
    This is the unchecked formula; user-entered dates go through
    :func:`dose.source_strength.decay_between` (the date rule: at most 7 days before, 3
    half-lives after calibration) and :func:`dose.source_strength.strengths_at_implant`.
    """

    def as_dt(d: date | datetime) -> datetime:
        return d if isinstance(d, datetime) else datetime(d.year, d.month, d.day)

    dt_h = (as_dt(implant) - as_dt(calibration)).total_seconds() / 3600.0
    return math.exp(-math.log(2.0) * dt_h / half_life_h)


def total_dose_gy_from_initial_rate(
    rate_cgy_per_h: float, *, half_life_h: float = I125_HALF_LIFE_H
) -> float:
    """Permanent-implant total dose D∞ (Gy) from the initial dose rate Ḋ₀ (cGy/h): Ḋ₀·τ/100."""
    return rate_cgy_per_h * (half_life_h / math.log(2.0)) / 100.0
