"""TG-43U1 seed source models: loading, validation and checksums.

One JSON file per model lives in ``resources/seeds/<model_id>.json`` (schema
``seedplan.seed-source/1``). Tables are stored in **centimetres and degrees**, as published; the
conversion to the engine's millimetres happens once, in the engines (``CM_PER_MM``).

Public API::

    load_model(name_or_path: str | Path) -> SourceModel     # by model id, alias or file path
    known_models() -> list[str]                             # model ids in resources/seeds
    SourceModel                                             # frozen dataclass, see below
    SourceModel.checksum -> str                             # sha256 of all numeric data
    SourceModel.table_checksums -> dict[str, str]           # sha256 per table

Checksums identify every number that changes the dose or how a seed is drawn: the constants
(Λ, L, half-life: D∞ = Ḋ₀·τ), g_L(r), F(r, θ), φ_an(r) and the capsule (outer radius and
length: the engines cap and flag points inside it, and the seed is drawn and listed with its
length). Names, aliases, the single-source flag and provenance text are not data and are left
out, so a corrected manufacturer name keeps the checksum.

Validation on load (each failure raises :class:`dose.errors.InputError` naming the file and the
field): radii strictly increasing and positive, angles strictly increasing within [0°, 90°] with
0° and 90° present, F(r, 90°) = 1, g_L(1 cm) = 1, table sizes agree, Λ and L positive and finite,
capsule half-length ≥ L/2 (so the on-axis G_L form is always valid outside the capsule).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dose.errors import InputError

__all__ = [
    "SEEDS_DIR",
    "SourceModel",
    "known_models",
    "load_model",
    "parse_model",
]

SEEDS_DIR = Path(__file__).resolve().parent.parent / "resources" / "seeds"
_SCHEMA = "seedplan.seed-source/1"
_UNITY_TOL = 1e-9


@dataclass(frozen=True)
class SourceModel:
    """One seed model's TG-43U1 data (lengths in cm, angles in degrees, Λ in cGy h⁻¹ U⁻¹).

    Attributes
    ----------
    model_id : str
        Canonical short name, e.g. ``"6711"``.
    dose_rate_constant : float
        Λ, cGy h⁻¹ U⁻¹.
    active_length_cm : float
        L used in the line-source geometry function G_L.
    g_r_cm, g_values : (Ng,) float64
        Radial dose function g_L(r) nodes.
    f_r_cm : (Nr,) float64; f_theta_deg : (Nθ,) float64; f_values : (Nθ, Nr) float64
        2D anisotropy function F(r, θ), rows θ, columns r.
    phi_r_cm, phi_values : (Nφ,) float64 or None
        1D anisotropy factor φ_an(r); None when the data set has none.
    capsule_radius_cm, capsule_half_length_cm : float
        Capsule used to cap and flag points inside the seed (part of :attr:`checksum`).
    single_source : bool
        True when the data have only one public source (not cross-checked).
    """

    model_id: str
    manufacturer: str
    model: str
    radionuclide: str
    half_life_days: float
    dose_rate_constant: float
    active_length_cm: float
    g_r_cm: NDArray[np.float64]
    g_values: NDArray[np.float64]
    f_r_cm: NDArray[np.float64]
    f_theta_deg: NDArray[np.float64]
    f_values: NDArray[np.float64]
    phi_r_cm: NDArray[np.float64] | None
    phi_values: NDArray[np.float64] | None
    capsule_radius_cm: float
    capsule_half_length_cm: float
    single_source: bool
    aliases: tuple[str, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    path: Path | None = field(default=None, compare=False)
    table_checksums: dict[str, str] = field(default_factory=dict, compare=False)
    checksum: str = ""

    @property
    def has_phi_an(self) -> bool:
        return self.phi_r_cm is not None

    @property
    def short_checksum(self) -> str:
        """First 12 hex digits of :attr:`checksum` (for labels)."""
        return self.checksum[:12]

    def describe(self) -> str:
        flag = " [single-source data]" if self.single_source else ""
        return (
            f"{self.manufacturer} {self.model} ({self.radionuclide}), Λ = "
            f"{self.dose_rate_constant:.3f} cGy/h/U, L = {self.active_length_cm:.3f} cm{flag}"
        )


# --------------------------------------------------------------------------- helpers
def _canonical_sha256(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _num(value: Any, where: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"field {where}: expected a number, got {value!r}", path)
    x = float(value)
    if not math.isfinite(x):
        raise InputError(f"field {where}: not finite ({value!r})", path)
    return x


def _vector(d: dict[str, Any], key: str, where: str, path: Path) -> NDArray[np.float64]:
    if key not in d:
        raise InputError(f"field {where}.{key} is missing", path)
    raw = d[key]
    if not isinstance(raw, list) or not raw:
        raise InputError(f"field {where}.{key}: expected a non-empty list of numbers", path)
    return np.array([_num(v, f"{where}.{key}[{i}]", path) for i, v in enumerate(raw)])


def _increasing(a: NDArray[np.float64], where: str, path: Path) -> None:
    if a.size > 1 and not np.all(np.diff(a) > 0):
        raise InputError(f"field {where}: values must be strictly increasing", path)


def _section(doc: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    sec = doc.get(key)
    if not isinstance(sec, dict):
        raise InputError(f"field {key} is missing or not an object", path)
    return sec


# --------------------------------------------------------------------------- parsing
def parse_model(doc: Any, path: str | Path) -> SourceModel:
    """Validate a decoded seed JSON document and build a :class:`SourceModel`."""
    path = Path(path)
    if not isinstance(doc, dict):
        raise InputError("seed file must contain a JSON object", path)
    if doc.get("schema") != _SCHEMA:
        raise InputError(f"field schema: expected {_SCHEMA!r}, got {doc.get('schema')!r}", path)
    model_id = doc.get("model_id")
    if not isinstance(model_id, str) or not model_id:
        raise InputError("field model_id is missing", path)

    lam = _num(
        doc.get("dose_rate_constant_cGy_per_h_per_U"), "dose_rate_constant_cGy_per_h_per_U", path
    )
    length = _num(doc.get("active_length_cm"), "active_length_cm", path)
    half_life = _num(doc.get("half_life_days"), "half_life_days", path)
    if lam <= 0:
        raise InputError("field dose_rate_constant_cGy_per_h_per_U must be positive", path)
    if not 0 < length < 2.0:
        raise InputError("field active_length_cm must be in (0, 2) cm", path)
    if half_life <= 0:
        raise InputError("field half_life_days must be positive", path)

    # g_L(r)
    g_sec = _section(doc, "radial_dose_function", path)
    g_r = _vector(g_sec, "r_cm", "radial_dose_function", path)
    g_v = _vector(g_sec, "g_L", "radial_dose_function", path)
    if g_r.size != g_v.size:
        raise InputError(
            f"field radial_dose_function: r_cm has {g_r.size} values but g_L has {g_v.size}", path
        )
    if g_r.size < 2:
        raise InputError("field radial_dose_function: need at least 2 radii", path)
    if np.any(g_r <= 0):
        raise InputError("field radial_dose_function.r_cm: radii must be positive", path)
    _increasing(g_r, "radial_dose_function.r_cm", path)
    if np.any(g_v <= 0):
        raise InputError("field radial_dose_function.g_L: values must be positive", path)
    one = np.flatnonzero(np.isclose(g_r, 1.0, rtol=0, atol=1e-12))
    if one.size != 1 or abs(g_v[one[0]] - 1.0) > _UNITY_TOL:
        raise InputError(
            "field radial_dose_function.g_L: g_L(1 cm) must be tabulated and = 1", path
        )

    # F(r, θ)
    f_sec = _section(doc, "anisotropy_function", path)
    f_r = _vector(f_sec, "r_cm", "anisotropy_function", path)
    f_t = _vector(f_sec, "theta_deg", "anisotropy_function", path)
    raw_f = f_sec.get("F")
    if not isinstance(raw_f, list) or len(raw_f) != f_t.size:
        n = len(raw_f) if isinstance(raw_f, list) else 0
        raise InputError(
            f"field anisotropy_function.F: expected {f_t.size} rows (one per theta), got {n}", path
        )
    rows = []
    for it, row in enumerate(raw_f):
        if not isinstance(row, list) or len(row) != f_r.size:
            n = len(row) if isinstance(row, list) else 0
            raise InputError(
                f"field anisotropy_function.F[{it}]: expected {f_r.size} values (one per r), "
                f"got {n}",
                path,
            )
        rows.append(
            [_num(v, f"anisotropy_function.F[{it}][{ir}]", path) for ir, v in enumerate(row)]
        )
    f_v = np.array(rows, dtype=np.float64)
    if np.any(f_r <= 0):
        raise InputError("field anisotropy_function.r_cm: radii must be positive", path)
    _increasing(f_r, "anisotropy_function.r_cm", path)
    _increasing(f_t, "anisotropy_function.theta_deg", path)
    if f_t[0] != 0.0 or f_t[-1] != 90.0:
        raise InputError(
            "field anisotropy_function.theta_deg: must run from 0 to 90 degrees (symmetric seed)",
            path,
        )
    if np.any(np.abs(f_v[-1] - 1.0) > _UNITY_TOL):
        raise InputError("field anisotropy_function.F: F(r, 90°) must be 1 for every r", path)
    if np.any(f_v <= 0):
        raise InputError("field anisotropy_function.F: values must be positive", path)

    # φ_an(r) (optional)
    phi_r: NDArray[np.float64] | None = None
    phi_v: NDArray[np.float64] | None = None
    phi_sec = doc.get("anisotropy_factor")
    if phi_sec is not None:
        if not isinstance(phi_sec, dict):
            raise InputError("field anisotropy_factor must be an object or null", path)
        phi_r = _vector(phi_sec, "r_cm", "anisotropy_factor", path)
        phi_v = _vector(phi_sec, "phi_an", "anisotropy_factor", path)
        if phi_r.size != phi_v.size:
            raise InputError(
                f"field anisotropy_factor: r_cm has {phi_r.size} values but phi_an has "
                f"{phi_v.size}",
                path,
            )
        if np.any(phi_r <= 0):
            raise InputError("field anisotropy_factor.r_cm: radii must be positive", path)
        _increasing(phi_r, "anisotropy_factor.r_cm", path)
        if np.any(phi_v <= 0):
            raise InputError("field anisotropy_factor.phi_an: values must be positive", path)

    cap = _section(doc, "capsule", path)
    cap_r = _num(cap.get("outer_radius_cm"), "capsule.outer_radius_cm", path)
    cap_len = _num(cap.get("length_cm"), "capsule.length_cm", path)
    if cap_r <= 0 or cap_len <= 0:
        raise InputError("field capsule: radius and length must be positive", path)
    if cap_len / 2.0 < length / 2.0:
        raise InputError("field capsule.length_cm: capsule shorter than the active length", path)

    aliases = doc.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise InputError("field aliases must be a list of strings", path)
    single = doc.get("single_source")
    if not isinstance(single, bool):
        raise InputError("field single_source must be true or false", path)

    tables: dict[str, Any] = {
        "constants": {"lambda": lam, "L_cm": length, "half_life_days": half_life},
        "g_L": {"r_cm": g_r.tolist(), "g_L": g_v.tolist()},
        "F": {"r_cm": f_r.tolist(), "theta_deg": f_t.tolist(), "F": f_v.tolist()},
        "phi_an": None
        if phi_r is None or phi_v is None
        else {"r_cm": phi_r.tolist(), "phi_an": phi_v.tolist()},
        "capsule": {"outer_radius_cm": cap_r, "length_cm": cap_len},
    }
    checksums = {k: _canonical_sha256(v) for k, v in tables.items()}
    overall = _canonical_sha256({"model_id": model_id, **tables})
    for a in (g_r, g_v, f_r, f_t, f_v, phi_r, phi_v):
        if a is not None:
            a.setflags(write=False)
    return SourceModel(
        model_id=model_id,
        manufacturer=str(doc.get("manufacturer", "")),
        model=str(doc.get("model", model_id)),
        radionuclide=str(doc.get("radionuclide", "I-125")),
        half_life_days=half_life,
        dose_rate_constant=lam,
        active_length_cm=length,
        g_r_cm=g_r,
        g_values=g_v,
        f_r_cm=f_r,
        f_theta_deg=f_t,
        f_values=f_v,
        phi_r_cm=phi_r,
        phi_values=phi_v,
        capsule_radius_cm=cap_r,
        capsule_half_length_cm=cap_len / 2.0,
        single_source=single,
        aliases=tuple(aliases),
        provenance=doc.get("provenance", {}),
        path=path,
        table_checksums=checksums,
        checksum=overall,
    )


def _load_file(path: Path) -> SourceModel:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("seed file is not UTF-8 text", path) from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON (line {exc.lineno}: {exc.msg})", path) from exc
    return parse_model(doc, path)


def known_models(seeds_dir: Path = SEEDS_DIR) -> list[str]:
    """Model ids of every seed file in ``seeds_dir`` (sorted)."""
    return sorted(p.stem for p in seeds_dir.glob("*.json"))


@lru_cache(maxsize=64)
def _load_cached(path_str: str, mtime_ns: int) -> SourceModel:
    return _load_file(Path(path_str))


def load_model(name_or_path: str | Path, seeds_dir: Path = SEEDS_DIR) -> SourceModel:
    """Load a seed model by id (``"6711"``), alias (``"OncoSeed 6711"``) or JSON file path.

    Unknown names raise :class:`InputError` listing the known models.
    """
    candidate = Path(name_or_path)
    if candidate.suffix.lower() == ".json" or candidate.is_file():
        if not candidate.is_file():
            raise InputError("seed model file not found", candidate)
        return _load_cached(str(candidate.resolve()), candidate.stat().st_mtime_ns)
    name = str(name_or_path).strip()
    direct = seeds_dir / f"{name}.json"
    if direct.is_file():
        return _load_cached(str(direct.resolve()), direct.stat().st_mtime_ns)
    wanted = name.casefold().replace(" ", "").replace("-", "")
    for p in sorted(seeds_dir.glob("*.json")):
        m = _load_cached(str(p.resolve()), p.stat().st_mtime_ns)
        keys = [m.model_id, *m.aliases]
        if any(k.casefold().replace(" ", "").replace("-", "") == wanted for k in keys):
            return m
    raise InputError(
        f"unknown seed model {name!r}; known models: {', '.join(known_models(seeds_dir))}"
    )
