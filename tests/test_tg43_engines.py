"""Fast (numba) engine against the independent numpy reference; accumulator, slices, threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dose.engine import (
    Cancelled,
    DoseGrid,
    SeedSet,
    cross_check,
    kernels,
    make_engine,
    slice_geometry,
    warm_up,
    warm_up_in_subprocess,
)
from dose.geometry import GridGeometry
from tests.dose_helpers import random_edits, random_rotation

# Requirement (issue 3): fast vs reference ≤ 0.1 % beyond 1 mm from every seed.
TOL = 1e-3


def _cloud(rng: np.random.Generator, n: int, spread_mm: float = 12.0) -> SeedSet:
    pos = rng.normal(0.0, spread_mm, (n, 3))
    axes = rng.normal(size=(n, 3))  # arbitrary orientations
    return SeedSet.create(pos, axes, rng.uniform(0.3, 1.2, n))


def _min_dist(points: np.ndarray, seeds: SeedSet) -> np.ndarray:
    d = np.linalg.norm(points[:, None, :] - seeds.positions_mm[None, :, :], axis=2)
    return d.min(axis=1)


@pytest.mark.parametrize(
    ("model", "formalism"), [("6711", "2d"), ("2301", "2d"), ("AgX100", "2d"), ("6711", "1d")]
)
def test_points_fast_vs_reference(model: str, formalism: str) -> None:
    rng = np.random.default_rng(5)
    seeds = _cloud(rng, 25)
    pts = rng.uniform(-60, 60, (3000, 3))
    pts = np.vstack([pts, seeds.positions_mm + rng.normal(0, 3, (25, 3))])  # some close ones
    fast = make_engine(model, formalism, "numba").dose_rate_at_points(seeds, pts)
    ref = make_engine(model, formalism, "reference").dose_rate_at_points(seeds, pts)
    far = _min_dist(pts, seeds) > 1.0
    rel = np.abs(fast.dose_rate_cgy_h - ref.dose_rate_cgy_h) / ref.dose_rate_cgy_h
    assert rel[far].max() <= TOL
    assert (fast.flagged == ref.flagged).all()
    assert fast.formalism == formalism and fast.table_checksum == ref.table_checksum


@pytest.mark.parametrize("formalism", ["2d", "1d"])
def test_grid_non_identity_direction_fast_vs_reference(formalism: str) -> None:
    rng = np.random.default_rng(8)
    seeds = _cloud(rng, 15, 6.0)
    geometry = GridGeometry(
        (14, 17, 19),
        np.array([-15.0, -12.0, -11.0]),
        np.array([1.3, 1.1, 1.7]),
        random_rotation(rng),
    )
    fast = make_engine("6711", formalism, "numba").dose_rate_on_grid(seeds, geometry)
    ref = make_engine("6711", formalism, "reference").dose_rate_on_grid(seeds, geometry)
    world = geometry.voxel_centres_world().reshape(-1, 3)
    far = (_min_dist(world, seeds) > 1.0).reshape(geometry.shape_zyx)
    rel = np.abs(fast.dose_rate_cgy_h - ref.dose_rate_cgy_h) / ref.dose_rate_cgy_h
    assert rel[far].max() <= TOL
    assert (fast.flagged == ref.flagged).all()
    # the grid agrees with point evaluation at the voxel centres (same LPS convention)
    pts = make_engine("6711", formalism).dose_rate_at_points(seeds, world)
    np.testing.assert_allclose(fast.dose_rate_cgy_h.reshape(-1), pts.dose_rate_cgy_h, rtol=1e-5)


def test_grid_flags_voxels_inside_capsules() -> None:
    seeds = SeedSet.create([[0.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]], 1.0)
    geometry = GridGeometry.axis_aligned((9, 3, 3), (-1.0, -1.0, -4.0), (1.0, 1.0, 1.0))
    res = make_engine("6711").dose_rate_on_grid(seeds, geometry)
    # 6711 capsule: radius 0.4 mm, half-length 2.275 mm → voxels (0, 0, z) with |z| ≤ 2 inside
    expected = np.zeros(geometry.shape_zyx, dtype=bool)
    expected[2:7, 1, 1] = True
    assert (res.flagged == expected).all() and res.n_flagged == 5
    assert np.all(np.isfinite(res.dose_rate_cgy_h))


def test_slice_equals_grid_slice() -> None:
    rng = np.random.default_rng(9)
    seeds = _cloud(rng, 10, 5.0)
    geometry = GridGeometry(
        (6, 20, 22), np.array([-10.0, -9.0, -3.0]), np.ones(3), random_rotation(rng)
    )
    eng = make_engine("6711")
    full = eng.dose_rate_on_grid(seeds, geometry)
    for k in (0, 3, 5):
        sl = eng.dose_rate_on_slice(seeds, geometry, k)
        np.testing.assert_array_equal(sl.dose_rate_cgy_h, full.dose_rate_cgy_h[k])
        assert slice_geometry(geometry, k).same_as(sl.geometry)


def test_accumulator_long_random_edit_sequence_has_no_drift() -> None:
    rng = np.random.default_rng(12)
    geometry = GridGeometry(
        (22, 26, 30), np.array([-15.0, -13.0, -11.0]), np.ones(3), random_rotation(rng)
    )
    eng = make_engine("6711")
    acc = DoseGrid(eng, geometry)
    acc.set_seeds(_cloud(rng, 20, 7.0))
    ids = list(range(20))
    random_edits(acc, rng, ids, 600)
    full = eng.dose_rate_on_grid(acc.seeds(), geometry)
    rel = np.abs(acc.dose_rate_cgy_h - full.dose_rate_cgy_h) / full.dose_rate_cgy_h
    assert rel.max() <= 1e-6
    assert (acc.flagged == full.flagged).all()
    assert len(acc) == len(ids)


def test_accumulator_add_remove_returns_to_zero_and_move_matches_fresh() -> None:
    geometry = GridGeometry.axis_aligned((10, 10, 10), (-4.5, -4.5, -4.5), (1.0, 1.0, 1.0))
    eng = make_engine("2301")
    acc = DoseGrid(eng, geometry)
    acc.add("a", (0.3, 0.2, 0.1), (1, 0, 0), 0.8)
    one = eng.dose_rate_on_grid(SeedSet.create([[0.3, 0.2, 0.1]], [[1, 0, 0]], 0.8), geometry)
    np.testing.assert_array_equal(acc.dose_rate_cgy_h, one.dose_rate_cgy_h)
    acc.move("a", position_mm=(2.0, -1.0, 0.5))
    moved = eng.dose_rate_on_grid(SeedSet.create([[2.0, -1.0, 0.5]], [[1, 0, 0]], 0.8), geometry)
    np.testing.assert_allclose(acc.dose_rate_cgy_h, moved.dose_rate_cgy_h, rtol=1e-12)
    acc.remove("a")
    assert np.abs(acc.dose_rate_cgy_h).max() <= 1e-9 * moved.dose_rate_cgy_h.max()
    assert not acc.flagged.any()
    with pytest.raises(KeyError):
        acc.remove("a")


def test_cancel_between_chunks_keeps_previous_state() -> None:
    rng = np.random.default_rng(2)
    geometry = GridGeometry.axis_aligned((40, 40, 40), (-20.0, -20.0, -20.0), (1.0, 1.0, 1.0))
    eng = make_engine("6711")
    acc = DoseGrid(eng, geometry)
    acc.add("x", (0, 0, 0), (0, 0, 1), 1.0)
    before = acc.dose_rate_cgy_h.copy()
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(Cancelled):
        acc.set_seeds(_cloud(rng, 30), cancel=cancel)
    np.testing.assert_array_equal(acc.dose_rate_cgy_h, before)
    assert acc.seed_ids() == ["x"]
    with pytest.raises(Cancelled):
        eng.dose_rate_on_grid(_cloud(rng, 5), geometry, cancel=lambda: True)


def test_compute_off_thread_equals_main_thread_and_reports_progress() -> None:
    rng = np.random.default_rng(4)
    seeds = _cloud(rng, 20)
    geometry = GridGeometry.axis_aligned((30, 30, 30), (-15.0, -15.0, -15.0), (1.0, 1.0, 1.0))
    eng = make_engine("6711")
    main = eng.dose_rate_on_grid(seeds, geometry)
    box: dict[str, object] = {}
    progress: list[float] = []

    messages: set[str] = set()

    def on_progress(fraction: float, message: str) -> None:  # dose.progress.ProgressFn
        progress.append(fraction)
        messages.add(message)

    def work() -> None:
        box["res"] = eng.dose_rate_on_grid(seeds, geometry, progress=on_progress)

    t = threading.Thread(target=work)
    t.start()
    # the GUI thread can compute a slice meanwhile (kernel launches are serialised safely)
    sl = eng.dose_rate_on_slice(seeds, geometry, 7)
    t.join(timeout=120)
    assert not t.is_alive()
    np.testing.assert_array_equal(box["res"].dose_rate_cgy_h, main.dose_rate_cgy_h)
    np.testing.assert_array_equal(sl.dose_rate_cgy_h, main.dose_rate_cgy_h[7])
    assert progress and progress[-1] == 1.0 and progress == sorted(progress)
    assert messages == {"dose grid"}


def test_cutoff_drops_only_far_contributions() -> None:
    rng = np.random.default_rng(6)
    seeds = _cloud(rng, 8, 4.0)
    pts = rng.uniform(-80, 80, (500, 3))
    exact = make_engine("6711").dose_rate_at_points(seeds, pts).dose_rate_cgy_h
    cut = make_engine("6711", cutoff_mm=1000.0).dose_rate_at_points(seeds, pts).dose_rate_cgy_h
    np.testing.assert_allclose(cut, exact, rtol=1e-12)
    c30 = make_engine("6711", cutoff_mm=30.0).dose_rate_at_points(seeds, pts).dose_rate_cgy_h
    r30 = make_engine("6711", kind="reference", cutoff_mm=30.0).dose_rate_at_points(seeds, pts)
    np.testing.assert_allclose(c30, r30.dose_rate_cgy_h, rtol=TOL)
    assert np.all(c30 <= exact * (1 + 1e-12)) and np.any(c30 < exact)


def test_atan_polynomial_and_warm_up() -> None:
    t = np.linspace(0, 1, 10001)
    q = t * t
    p = np.polynomial.polynomial.polyval(q, kernels.ATAN_COEF)
    assert np.max(np.abs(t * p - np.arctan(t))) < 1e-7
    warm_up(["6711", "2301"])
    assert kernels.threads() >= 1


def test_seedset_validation() -> None:
    from dose.errors import InputError

    s = SeedSet.create([[0, 0, 0], [1, 2, 3]])
    np.testing.assert_array_equal(s.axes, [[0, 0, 1], [0, 0, 1]])  # default needle axis +z
    with pytest.raises(InputError):
        SeedSet.create([[0, 0, 0]], [[0, 0, 0]])
    with pytest.raises(InputError):
        SeedSet.create([[0, 0, np.nan]])


def test_cross_check_for_reports() -> None:
    rng = np.random.default_rng(21)
    seeds = _cloud(rng, 6, 5.0)
    pts = np.vstack([rng.uniform(-30, 30, (200, 3)), seeds.positions_mm[:2]])
    chk = cross_check("6711", "2d", seeds, pts)
    assert chk["n_points"] == 200  # the two seed centres are skipped
    assert chk["max_rel_diff"] <= TOL and chk["formalism"] == "2d"


def test_warm_up_in_subprocess_succeeds() -> None:
    # the GUI's contract (dose/engine/warmup.py): returns at once; progress(fraction, message)
    # while compiling; on_done(ok, message) exactly once when the child has exited
    fractions: list[float] = []
    done_calls: list[tuple[bool, str]] = []
    proc = warm_up_in_subprocess(
        ["6711"],
        progress=lambda f, msg: fractions.append(f),
        on_done=lambda ok, msg: done_calls.append((ok, msg)),
    )
    assert proc.wait(timeout=300) == 0
    assert proc.done and proc.ok is True and proc.poll() == 0 and proc.returncode == 0
    assert done_calls == [(True, "dose kernels compiled")]
    assert fractions and fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_warm_up_in_subprocess_reports_failure() -> None:
    done_calls: list[tuple[bool, str]] = []
    proc = warm_up_in_subprocess(["nonesuch"], on_done=lambda ok, msg: done_calls.append((ok, msg)))
    assert proc.wait(timeout=120) != 0
    assert proc.ok is False and len(done_calls) == 1 and done_calls[0][0] is False
    assert done_calls[0][1] == proc.message
    assert "unknown seed model 'nonesuch'" in proc.message  # the child's last line, for the GUI


def test_warm_up_in_subprocess_runs_the_steps_it_is_given() -> None:
    # The GUI's child also compiles the post-op seed fit's kernels (app/gui/dose_warmup.py):
    # named "module:function", run after the dose kernels, on one monotonic progress bar.
    fractions: list[float] = []
    messages: list[str] = []
    proc = warm_up_in_subprocess(
        ["6711"],
        also=["planner.postop.detection.seed_fit_kernels:warm_up"],
        progress=lambda f, msg: (fractions.append(f), messages.append(msg)),
    )
    assert proc.wait(timeout=300) == 0 and proc.ok is True
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert "compiling seed_fit_kernels" in messages
    assert max(f for f, m in zip(fractions, messages, strict=True) if "dose" in m) <= 0.5
    failed = warm_up_in_subprocess(["6711"], also=["planner.postop.nonesuch:warm_up"])
    assert failed.wait(timeout=300) != 0 and "nonesuch" in failed.message
    with pytest.raises(ValueError, match=r"package\.module:function"):
        warm_up_in_subprocess(["6711"], also=["no_function_named"])


@pytest.mark.parametrize("model", ["6711", "2301", "6702", "IAI-125A", "STM1251", "AgX100"])
def test_exact_table_accuracy_by_distance_band(model: str) -> None:
    # The numba engine's (r, θ) table against the independent reference engine, one seed with an
    # arbitrary axis, by distance from it (bounds stated in dose/engine/kernels/__init__.py:
    # ≤ 3e-5 from 5 to 60 mm, ≤ 3e-4 elsewhere beyond 3.5 mm; measured ≤ 2.5e-5 and ≤ 2.5e-4).
    rng = np.random.default_rng(sum(map(ord, model)) + 1)
    axis = rng.normal(size=3)
    seeds = SeedSet.create(rng.normal(size=(1, 3)), axis[np.newaxis], 0.9)
    fast = make_engine(model)
    ref = make_engine(model, kind="reference")
    for lo, hi, tol in ((3.6, 5.0, 3e-4), (5.0, 60.0, 3e-5), (60.0, 200.0, 3e-4)):
        d = rng.normal(size=(2000, 3))
        d /= np.linalg.norm(d, axis=1)[:, np.newaxis]
        pts = seeds.positions_mm + d * rng.uniform(lo, hi, (2000, 1))
        got = fast.dose_rate_at_points(seeds, pts).dose_rate_cgy_h
        want = ref.dose_rate_at_points(seeds, pts).dose_rate_cgy_h
        assert np.max(np.abs(got - want) / want) <= tol, (lo, hi)


def test_one_progress_and_cancel_contract_in_every_mode() -> None:
    # dose.progress: progress(fraction, message) rising to 1.0; cancel() → dose.progress.Cancelled
    import dose.progress

    assert Cancelled is dose.progress.Cancelled
    rng = np.random.default_rng(31)
    seeds = _cloud(rng, 12, 6.0)
    geometry = GridGeometry.axis_aligned((24, 26, 28), (-12.0, -13.0, -14.0), (1.0, 1.0, 1.0))
    for kind, mode, message in (
        ("numba", "exact", "dose grid"),
        ("numba", "fast", "dose grid (fast)"),
        ("reference", "exact", "dose grid"),
    ):
        eng = make_engine("6711", kind=kind)
        calls: list[tuple[float, str]] = []
        acc = DoseGrid(eng, geometry, mode=mode)
        acc.set_seeds(seeds, progress=lambda f, msg, calls=calls: calls.append((f, msg)))
        fractions = [f for f, _ in calls]
        assert fractions and fractions[-1] == 1.0 and fractions == sorted(fractions), kind
        assert {msg for _, msg in calls} == {message}, (kind, mode)
        before = acc.dose_rate_cgy_h.copy()
        with pytest.raises(dose.progress.Cancelled, match="cancelled"):
            acc.set_seeds(_cloud(rng, 3), cancel=lambda: True)
        np.testing.assert_array_equal(acc.dose_rate_cgy_h, before)
        with pytest.raises(dose.progress.Cancelled):
            eng.dose_rate_at_points(seeds, np.zeros((5, 3)), cancel=lambda: True)
