"""TG-43U1 conventions shared by both engines (constants only — no shared numerics).

The numba engine (``dose.engine.kernels``) and the reference engine (``dose.engine.reference``)
implement the formalism independently; what they share is *definitions*, kept here so that a
change in convention happens in one place:

* ``CM_PER_MM``: the tables are in cm, the engine API in mm; each engine converts once.
* ``ON_AXIS_SIN_THETA``: below this sin θ (and only while r > L/2) G_L uses the on-axis form
  1/(r² − L²/4) instead of β/(L r sin θ) (pyTG43, RobustBrachy use 0.003).
* ``Formalism``: ``"2d"`` (line source, F(r, θ)) or ``"1d"`` (point-source approximation with
  G_L(r, 90°) and φ_an(r)).

Conventions (tg43.md §4): exact G_L with β = atan2(z + L/2, ρ) − atan2(z − L/2, ρ); normalised by
G_L(1 cm, 90°); g_L linear inside the table, nearest below r_min, log-linear beyond r_max using
the last two nodes; F bilinear in (r, θ°), θ folded to [0°, 90°], r clamped to the table;
φ_an linear in r, clamped. Points inside the capsule (ρ < capsule radius and |z| < capsule
half-length) are evaluated at ρ = capsule radius (same z) and flagged; in 1D, points with
r < capsule radius are evaluated at r = capsule radius and flagged.
"""

from __future__ import annotations

import math
from typing import Literal

from dose.errors import InputError
from dose.sources import SourceModel

__all__ = [
    "CM_PER_MM",
    "FORMALISMS",
    "MM_PER_CM",
    "ON_AXIS_SIN_THETA",
    "Formalism",
    "check_formalism",
    "reference_geometry_factor",
]

CM_PER_MM = 0.1
MM_PER_CM = 10.0
ON_AXIS_SIN_THETA = 0.003

Formalism = Literal["2d", "1d"]
FORMALISMS: tuple[str, ...] = ("2d", "1d")


def check_formalism(formalism: str, model: SourceModel) -> Formalism:
    """Validate the formalism name for ``model`` (1D needs φ_an data)."""
    f = str(formalism).lower()
    if f not in FORMALISMS:
        raise InputError(f"unknown formalism {formalism!r}; use '2d' or '1d'")
    if f == "1d" and not model.has_phi_an:
        raise InputError(
            f"seed model {model.model_id} has no published φ_an(r) table in its data set; "
            "the 1D formalism is not available for it (use --formalism 2d)",
            model.path,
        )
    return f  # type: ignore[return-value]


def reference_geometry_factor(active_length_cm: float) -> float:
    """G_L(1 cm, 90°) = 2·atan(L/2)/L  (cm⁻²)."""
    half = 0.5 * active_length_cm
    return 2.0 * math.atan(half) / active_length_cm
