"""TG-43U1 formalism checks, on both engines (the numba one and the numpy reference).

Expected numbers and their sources are given beside each assertion; tg43.md is
../shared/reference/tg43.md (the project's data reference).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dose.engine import SeedSet, make_engine
from dose.engine import reference as er
from dose.errors import InputError
from dose.sources import load_model
from dose.tg43 import reference_geometry_factor

MODELS = ["6711", "2301", "6702", "IAI-125A", "STM1251", "AgX100"]
KINDS = ["numba", "reference"]
ONE_SEED = SeedSet.create([[0.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]], 1.0)


def _rate(kind: str, model: str, rho_mm, z_mm, formalism: str = "2d"):
    """Ḋ per U of one seed at the origin, axis +z, at cylinder coordinates (ρ along x, z)."""
    rho = np.atleast_1d(np.asarray(rho_mm, dtype=float))
    z = np.atleast_1d(np.asarray(z_mm, dtype=float))
    rho, z = np.broadcast_arrays(rho, z)
    pts = np.stack([rho, np.zeros_like(rho), z], axis=-1)
    res = make_engine(model, formalism, kind).dose_rate_at_points(ONE_SEED, pts)
    return res.dose_rate_cgy_h, res.flagged


def _g_ratio(model, r_cm, theta_rad):
    return er.geometry_factor(r_cm, theta_rad, model.active_length_cm) / reference_geometry_factor(
        model.active_length_cm
    )


def test_reference_geometry_factor_values() -> None:
    # tg43.md §1: G_L(1 cm, 90°) = 0.992600 (L = 0.30 cm) and 0.986978 (L = 0.40 cm)
    assert reference_geometry_factor(0.30) == pytest.approx(0.992600, abs=5e-7)
    assert reference_geometry_factor(0.40) == pytest.approx(0.986978, abs=5e-7)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MODELS)
def test_reference_point_equals_sk_lambda(kind: str, name: str) -> None:
    # TG-43U1 definition (tg43.md §3.1): Ḋ(1 cm, 90°) = S_K·Λ
    m = load_model(name)
    rate, flagged = _rate(kind, name, 10.0, 0.0)
    assert not flagged[0]
    assert rate[0] == pytest.approx(m.dose_rate_constant, rel=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MODELS)
def test_radial_dose_nodes_reproduced_on_transverse_axis(kind: str, name: str) -> None:
    # g_L nodes of each model's table (resources/seeds, from tg43.md §2); F(r, 90°) = 1
    m = load_model(name)
    r_cm = m.g_r_cm
    rate, flagged = _rate(kind, name, r_cm * 10.0, 0.0)
    assert not flagged.any()
    g = rate / (m.dose_rate_constant * _g_ratio(m, r_cm, np.full(r_cm.shape, np.pi / 2)))
    tol = 1e-9 if kind == "reference" else 2e-6  # numba: float32 table beyond 5 mm
    np.testing.assert_allclose(g, m.g_values, rtol=tol)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MODELS)
def test_anisotropy_nodes_reproduced(kind: str, name: str) -> None:
    # F(r, θ) table nodes (resources/seeds, tg43.md §2), after dividing out Λ, G_L ratio and g_L
    m = load_model(name)
    rr, tt = np.meshgrid(m.f_r_cm, m.f_theta_deg)
    th = np.radians(tt)
    rate, flagged = _rate(kind, name, rr * 10 * np.sin(th), rr * 10 * np.cos(th))
    ok = ~flagged.reshape(rr.shape)
    assert ok.mean() > 0.9
    expected_g = er.radial_dose(m, rr)
    f = rate.reshape(rr.shape) / (m.dose_rate_constant * _g_ratio(m, rr, th) * expected_g)
    tol = 1e-9 if kind == "reference" else 2e-5
    np.testing.assert_allclose(f[ok], m.f_values[ok], rtol=tol)


@pytest.mark.parametrize("kind", KINDS)
def test_1d_at_one_cm(kind: str) -> None:
    # tg43.md §3.1: 1D at 1 cm = S_K Λ φ_an(1) = 0.965 × 0.944 = 0.911 cGy/h/U for 6711
    rate, _ = _rate(kind, "6711", 10.0, 0.0, "1d")
    assert rate[0] == pytest.approx(0.965 * 0.944, rel=1e-6)
    assert rate[0] == pytest.approx(0.911, abs=5e-4)
    # 1D is orientation-free: the same value on the seed axis at 1 cm
    on_axis, _ = _rate(kind, "6711", 0.0, 10.0, "1d")
    assert on_axis[0] == pytest.approx(rate[0], rel=1e-6)


def test_1d_refused_without_phi_an() -> None:
    # IAI-125A, STM1251, AgX100: no φ_an in the public data (tg43.md §0)
    for name in ("IAI-125A", "STM1251", "AgX100"):
        with pytest.raises(InputError, match="φ_an"):
            make_engine(name, "1d")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["6711", "2301", "AgX100"])
def test_symmetry_theta_180_minus_theta(kind: str, name: str) -> None:
    rng = np.random.default_rng(1)
    rho = rng.uniform(0.5, 60, 200)
    z = rng.uniform(0.5, 60, 200)
    a, _ = _rate(kind, name, rho, z)
    b, _ = _rate(kind, name, rho, -z)
    np.testing.assert_allclose(a, b, rtol=1e-12 if kind == "reference" else 1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("r_mm", [4.0, 10.0, 30.0])
def test_continuity_across_on_axis_switch(kind: str, r_mm: float) -> None:
    # the on-axis form 1/(r² − L²/4) is used for sin θ < 0.003: values just either side of the
    # switch must agree. F changes by < 1e-8 over this Δθ; the two G_L forms themselves differ by
    # O(r² sin²θ / (r² − L²/4)) ≈ 2e-6 at r = 4 mm, so 1e-5 bounds a real discontinuity.
    s = 0.003 * np.array([1 - 1e-6, 1 + 1e-6])
    rate, flagged = _rate(kind, "6711", r_mm * s, r_mm * np.sqrt(1 - s * s))
    assert not flagged.any()
    assert rate[0] == pytest.approx(rate[1], rel=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_continuity_across_table_edges(kind: str) -> None:
    rel_eps = 1e-7  # Ḋ ∝ r⁻² changes by ~2·rel_eps across the edge
    # g_L edge at r_max = 10 cm (log-linear beyond) and F edge at r = 5 cm (6711, θ = 30°)
    for r_cm, theta in ((10.0, 90.0), (5.0, 30.0), (0.5, 30.0)):
        th = math.radians(theta)
        r = r_cm * np.array([1 - rel_eps, 1 + rel_eps]) * 10
        rate, _ = _rate(kind, "6711", r * math.sin(th), r * math.cos(th))
        assert rate[0] == pytest.approx(rate[1], rel=1e-5), (r_cm, theta)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MODELS)
def test_monotone_decay_along_transverse_axis(kind: str, name: str) -> None:
    r = np.linspace(1.0, 150.0, 600)
    rate, _ = _rate(kind, name, r, 0.0)
    assert np.all(np.diff(rate) < 0)


@pytest.mark.parametrize("kind", KINDS)
def test_far_field_log_linear_extrapolation(kind: str) -> None:
    # g_L beyond 10 cm: log-linear from the last two nodes (tg43.md §4.2): 6711 g(9) = 0.109,
    # g(10) = 0.0803 → g(12) = 0.0803·(0.0803/0.109)²
    m = load_model("6711")
    rate, _ = _rate(kind, "6711", 120.0, 0.0)
    g12 = 0.0803 * (0.0803 / 0.109) ** 2
    expected = 0.965 * _g_ratio(m, np.array(12.0), np.array(np.pi / 2)) * g12
    assert rate[0] == pytest.approx(float(expected), rel=1e-5)
    # below r_min (0.1 cm) g is held at g(0.1) = 1.055 (nearest neighbour)
    r_cm = 0.06
    rate_in, flagged = _rate(kind, "6711", r_cm * 10, 0.0)
    assert not flagged[0]  # 0.6 mm > capsule radius 0.4 mm
    expected_in = 0.965 * _g_ratio(m, np.array(r_cm), np.array(np.pi / 2)) * 1.055
    assert rate_in[0] == pytest.approx(float(expected_in), rel=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_points_inside_capsule_are_capped_and_flagged(kind: str) -> None:
    m = load_model("6711")
    cap = m.capsule_radius_cm * 10
    pts_rho = np.array([0.0, 0.1, 0.3, 0.0, 0.0, 0.6])
    pts_z = np.array([0.0, 0.5, 1.0, 2.0, 2.5, 0.0])
    rate, flagged = _rate(kind, "6711", pts_rho, pts_z)
    # inside: ρ < 0.4 mm and |z| < 2.275 mm (capsule 0.8 mm × 4.55 mm, matRad-LDR / Dolan)
    assert flagged.tolist() == [True, True, True, True, False, False]
    assert np.all(np.isfinite(rate)) and np.all(rate > 0)
    # capped value = value at the capsule surface, same z
    surface, _ = _rate(kind, "6711", np.full(4, cap), pts_z[:4])
    np.testing.assert_allclose(rate[:4], surface, rtol=1e-9)


@pytest.mark.parametrize("name", MODELS)
def test_engines_agree_near_the_seed(name: str) -> None:
    # inside 3.5 mm the numba engine evaluates the formalism directly, beyond it uses its table
    rng = np.random.default_rng(3)
    rho = rng.uniform(0, 6, 300)
    z = rng.uniform(-6, 6, 300)
    a, fa = _rate("numba", name, rho, z)
    b, fb = _rate("reference", name, rho, z)
    assert (fa == fb).all()
    np.testing.assert_allclose(a, b, rtol=3e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_anisotropy_r_clamped_outside_its_table(kind: str) -> None:
    # F is clamped in r (tg43.md §4.3), never 1.0 outside the table:
    # 6711 F(5 cm, 0°) = 0.550 holds at 8 cm; 2301 has no F below 1 cm, so
    # F(0.8 cm, 30°) = F(1 cm, 30°) = 0.900 (tables in tg43.md §2.1, §2.2)
    for name, r_cm, theta_deg, expected_f in (
        ("6711", 8.0, 0.0, 0.550),
        ("2301", 0.8, 30.0, 0.900),
    ):
        m = load_model(name)
        th = math.radians(theta_deg)
        rate, flagged = _rate(kind, name, r_cm * 10 * math.sin(th), r_cm * 10 * math.cos(th))
        assert not flagged[0]
        f = rate[0] / (
            m.dose_rate_constant
            * float(_g_ratio(m, np.array(r_cm), np.array(th)))
            * float(er.radial_dose(m, r_cm))
        )
        assert f == pytest.approx(expected_f, rel=2e-5)
