"""Choosing needles and seed slots: greedy with local search, and integer programming (HiGHS).

The problem (:class:`Problem`), on the dose-influence matrix of :mod:`planner.optimise.influence`
(dose in Gy per slot at sampled target and cord voxel centres):

* coverage: at least ``coverage_fraction`` (V100 ≥ 95 % plus a sampling margin) of the target
  points receive ≥ ``coverage_gy`` (the prescription, raised when the exact check falls short);
* the cord: every sampled cord point stays ≤ ``oar_limit_gy`` (a hard constraint; the point
  maximum bounds D0.1 cm³ from above, so it is conservative);
* at most one of two slots closer than the seed spacing on a needle; at most one of two
  needles closer than the needle clearance; at most ``max_needles`` needles; locked needles
  are open, excluded ones closed;
* minimise: seeds + ``needle_weight`` × Σ needle cost (1 + bone penalty) + ``hot_weight`` ×
  mean target dose / PD (the linear proxy for V150 and V200).

Two solvers, measured on the demo case and its variants (docs/autoplan.md):

* :func:`solve_greedy`: add the slot with the largest deficit reduction per cost that keeps
  every cord point under its limit, until the coverage holds; then drop every seed whose removal
  keeps it (fewest seeds, lowest V150). ~0.1-0.5 s. When coverage cannot be reached it stops at
  the best feasible coverage, so an infeasible target is reported, never "met".
* :func:`solve_milp`: the same problem as a mixed-integer programme (``scipy.optimize.milp``,
  HiGHS) with one binary per slot, needle and target point and a penalised slack on the
  coverage count (so an infeasible target still gives the best feasible plan), under a time
  limit; it returns HiGHS's incumbent at the limit.

Which serves better (measured on the demo case at 256², a few hundred slots, 2 loaded cores;
docs/autoplan.md): the greedy (best of five cord weights, with
refill swaps) gave 45 seeds / 19 needles, PTV_eval D90 112.8 Gy, cord D0.1 cm³ 48.7 Gy in
3.5 s end to end; HiGHS on the same problem hit its 5 s limit with a poor incumbent (29 seeds,
D90 72.7 Gy, V100 58 %): the coverage binaries (one per target point) with the cord's
D0.1 cm³ big-M rows make the LP relaxation weak, and the solver spends the budget in branching.
So the default is ``method="greedy"``; ``"milp"`` and ``"auto"`` (both, the better kept) stay
available for small problems and for comparison, and the reported metrics are always the
exact recomputation whatever the method. The greedy's result is then polished on voxel counts
(:mod:`planner.optimise.polish`): with it the automatic plan runs the greedy with one cord
weight (2; the others are within the polish's reach and cost ~0.3-1 s each).

Deadlines: :func:`solve_greedy` and :func:`solve` take ``deadline`` (``time.perf_counter()``
seconds): past it no further cord weight is tried and refill/growth stop where they are
(``Solution.cut_short``); the first growth of the first weight always completes, so a plan
exists. The cord limit holds at every step, so a cut solution keeps it too.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

__all__ = ["Problem", "Solution", "evaluate", "solve", "solve_greedy", "solve_milp"]


@dataclass
class Problem:
    """The selection problem (module docstring). Arrays: target_gy (Pt, S), oar_gy (Po, S),
    slot_needle (S,), needle_cost (N,)."""

    target_gy: NDArray[np.float64]
    oar_gy: NDArray[np.float64]
    slot_needle: NDArray[np.int64]
    needle_cost: NDArray[np.float64]
    coverage_gy: float
    coverage_fraction: float
    oar_limit_gy: float
    slot_conflicts: list[tuple[int, int]]
    needle_conflicts: list[tuple[int, int]]
    max_needles: int
    oar_hot_points: int = 1  # the limit holds for the oar_hot_points-th hottest point
    locked: frozenset[int] = frozenset()
    excluded: frozenset[int] = frozenset()
    needle_weight: float = 3.0
    hot_weight: float = 2.0

    @property
    def n_slots(self) -> int:
        return int(self.target_gy.shape[1])

    @property
    def n_needles(self) -> int:
        return int(self.needle_cost.shape[0])


@dataclass
class Solution:
    """Chosen slots (sorted indices) and needles, with the sampled metrics."""

    slots: NDArray[np.int64]
    needles: NDArray[np.int64]
    coverage: float  # fraction of target points ≥ coverage_gy
    oar_max_gy: float  # the oar_hot_points-th hottest sampled organ dose (≈ D0.1 cm³)
    objective: float
    method: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    cut_short: bool = False  # the deadline stopped the search (the constraints still hold)

    @property
    def feasible(self) -> bool:
        return True  # every solution here keeps the hard constraints


def evaluate(p: Problem, slots: NDArray[np.int64], method: str, seconds: float) -> Solution:
    """The sampled metrics and objective of a slot choice."""
    slots = np.unique(np.asarray(slots, dtype=np.int64))
    d_t = p.target_gy[:, slots].sum(axis=1)
    d_o = p.oar_gy[:, slots].sum(axis=1) if p.oar_gy.shape[0] else np.zeros(0)
    needles = np.unique(np.concatenate([p.slot_needle[slots], np.array(sorted(p.locked), int)]))
    cov = float(np.mean(d_t >= p.coverage_gy - 1e-9)) if d_t.size else 0.0
    obj = (
        len(slots)
        + p.needle_weight * float(p.needle_cost[needles].sum())
        + p.hot_weight * float(d_t.mean() / p.coverage_gy if d_t.size else 0.0)
    )
    return Solution(
        slots,
        needles.astype(np.int64),
        cov,
        oar_dose_at_hot_points(d_o, p.oar_hot_points),
        obj,
        method,
        seconds,
    )


def _better(a: Solution | None, b: Solution | None, goal: float) -> Solution | None:
    """The better of two solutions: goal met first, then coverage (when short), objective."""
    if a is None or b is None:
        return a or b
    ma, mb = a.coverage >= goal - 1e-9, b.coverage >= goal - 1e-9
    if ma != mb:
        return a if ma else b
    if not ma and abs(a.coverage - b.coverage) > 1e-9:
        return a if a.coverage > b.coverage else b
    return a if a.objective <= b.objective else b


def oar_dose_at_hot_points(d_o: NDArray[np.float64], k: int) -> float:
    """The ``k``-th largest of the sampled organ doses (Gy): D at the hottest ``k`` voxels."""
    if d_o.size == 0:
        return 0.0
    k = min(max(1, k), d_o.size)
    return float(np.partition(d_o, d_o.size - k)[d_o.size - k])


def _oar_ok(
    d_o: NDArray[np.float64],
    ao: NDArray[np.float64],
    limit: float,
    k: int,
    cand: NDArray,
    ao_row_max: NDArray[np.float64] | None = None,
) -> NDArray[np.bool_]:
    """Which slots keep the k-th hottest organ point ≤ limit once added (only ``cand``)."""
    out = np.zeros(ao.shape[1], dtype=bool)
    cols = np.flatnonzero(cand)
    if cols.size == 0:
        return out
    # Points already above the limit stay above; points that no slot can push over it never
    # count: only the others need the (points × slots) test.
    already = int(np.count_nonzero(d_o > limit))
    row_max = ao.max(axis=1) if ao_row_max is None else ao_row_max
    rows = np.flatnonzero((d_o <= limit) & (d_o + row_max > limit))
    if rows.size == 0:
        out[cols] = already < k
        return out
    trial = d_o[rows, np.newaxis] + ao[np.ix_(rows, cols)]
    over = already + (trial > limit).sum(axis=0)
    out[cols] = over < k  # fewer than k points above the limit: the k-th hottest is under it
    return out


#: Weights of a slot's peak cord dose (relative to the limit) in the greedy's cost; the
#: greedy runs once per weight and the best result is kept (a seed next to the cord uses the
#: cord's dose budget that farther seeds would need).
CORD_WEIGHTS = (2.0, 5.0, 0.0, 10.0, 20.0)  # the usual winner first (a deadline may cut the rest)


#: The smallest cord headroom (fraction of the limit) the headroom cost divides by.
HEADROOM_FLOOR = 0.02


class _Greedy:
    """State of one greedy run: chosen slots, open needles, sampled doses."""

    def __init__(
        self,
        p: Problem,
        cord_weight: float,
        deadline: float = math.inf,
        grow_deadline: float | None = None,
        headroom_weight: float = 0.0,
    ) -> None:
        self.p = p
        self.headroom_weight = headroom_weight
        self.deadline = deadline
        self.grow_deadline = deadline if grow_deadline is None else grow_deadline
        self.cut_short = False
        S = p.n_slots
        self.slot_nb: list[list[int]] = [[] for _ in range(S)]
        for a, b in p.slot_conflicts:
            self.slot_nb[a].append(b)
            self.slot_nb[b].append(a)
        self.needle_nb: list[list[int]] = [[] for _ in range(p.n_needles)]
        for a, b in p.needle_conflicts:
            self.needle_nb[a].append(b)
            self.needle_nb[b].append(a)
        at, ao = p.target_gy, p.oar_gy
        self.hot = at.mean(axis=0) / p.coverage_gy if at.shape[0] else np.zeros(S)
        cord_cost = ao.max(axis=0) / p.oar_limit_gy if ao.shape[0] else np.zeros(S)
        self.base_cost = 1.0 + p.hot_weight * self.hot * 0.1 + cord_weight * cord_cost
        self.tabu = np.zeros(S, dtype=bool)
        self.ao_row_max = ao.max(axis=1) if ao.shape[0] else np.zeros(0)
        self.set_chosen(np.zeros(S, dtype=bool))

    def set_chosen(self, chosen: NDArray[np.bool_]) -> None:
        """Derive every other field from the chosen slots."""
        p = self.p
        self.chosen = chosen.copy()
        idx = np.flatnonzero(chosen)
        self.d_t = p.target_gy[:, idx].sum(axis=1)
        self.d_o = p.oar_gy[:, idx].sum(axis=1)
        self.open_n = np.zeros(p.n_needles, dtype=bool)
        self.open_n[list(p.locked)] = True
        self.open_n[p.slot_needle[idx]] = True
        self.closed_n = np.zeros(p.n_needles, dtype=bool)
        self.closed_n[list(p.excluded)] = True
        for n in np.flatnonzero(self.open_n):
            self.closed_n[self.needle_nb[n]] = True
        self.blocked = self.closed_n[p.slot_needle].copy()
        for j in idx:
            self.blocked[self.slot_nb[j]] = True

    def coverage(self, d_t: NDArray[np.float64] | None = None) -> float:
        d = self.d_t if d_t is None else d_t
        return float(np.mean(d >= self.p.coverage_gy - 1e-9)) if d.size else 1.0

    def grow(self) -> None:
        """Add slots (best deficit reduction per cost) until the coverage holds or none fits."""
        p = self.p
        at, ao = p.target_gy, p.oar_gy
        n_t = max(at.shape[0], 1)
        while self.coverage() < p.coverage_fraction:
            if time.perf_counter() > self.grow_deadline:
                self.cut_short = True
                return
            deficit = p.coverage_gy - self.d_t
            short = np.flatnonzero(deficit > 0.0)  # covered points gain nothing
            ok = ~self.blocked & ~self.chosen & ~self.tabu
            if int(self.open_n.sum()) >= p.max_needles:
                ok &= self.open_n[p.slot_needle]
            cols = np.flatnonzero(ok)  # only slots that may be added are scored
            gain = np.zeros(p.n_slots)
            gain[cols] = np.minimum(at[np.ix_(short, cols)], deficit[short, np.newaxis]).sum(
                axis=0
            ) / (p.coverage_gy * n_t)
            ok &= gain > 1e-9
            if ao.shape[0] and ok.any():
                ok &= _oar_ok(self.d_o, ao, p.oar_limit_gy, p.oar_hot_points, ok, self.ao_row_max)
            if not ok.any():
                return
            cols = np.flatnonzero(ok)
            cost = self.base_cost[cols] + np.where(
                self.open_n[p.slot_needle[cols]],
                0.0,
                p.needle_weight * p.needle_cost[p.slot_needle[cols]],
            )
            if self.headroom_weight and ao.shape[0]:
                cost += self.headroom_weight * self.headroom_use(cols)
            s = int(cols[int(np.argmax(gain[cols] / cost))])
            self.chosen[s] = True
            self.blocked[self.slot_nb[s]] = True
            self.d_t += at[:, s]
            self.d_o += ao[:, s]
            n = int(p.slot_needle[s])
            if not self.open_n[n]:
                self.open_n[n] = True
                self.closed_n[self.needle_nb[n]] = True
                self.blocked |= self.closed_n[p.slot_needle]

    def headroom_use(self, cols: NDArray[np.int64]) -> NDArray[np.float64]:
        """The largest share of the cord's headroom (limit − dose so far, at least 2 % of the
        limit) that each slot of ``cols`` would use at the cord points that may get near the
        limit (dose + the largest slot's ≥ half the limit): a slot next to an already hot cord
        point costs more than one whose cord dose falls where the cord is still cold."""
        p = self.p
        lim = p.oar_limit_gy
        rows = np.flatnonzero(self.d_o + self.ao_row_max > 0.5 * lim)
        if rows.size == 0:
            return np.zeros(cols.size)
        head = np.maximum(lim - self.d_o[rows], HEADROOM_FLOOR * lim)
        return (p.oar_gy[np.ix_(rows, cols)] / head[:, np.newaxis]).max(axis=0)

    def refill(self, rounds: int) -> None:
        """When the cord stops the coverage: remove the seed adding most to the hottest cord
        points, grow again; keep the change when the coverage improved (else make it tabu)."""
        p = self.p
        if not p.oar_gy.shape[0]:
            return
        for _ in range(rounds):
            if self.coverage() >= p.coverage_fraction:
                return
            if time.perf_counter() > self.deadline:
                self.cut_short = True
                return
            idx = np.flatnonzero(self.chosen)
            if idx.size == 0:
                return
            k = min(p.oar_hot_points, self.d_o.size)
            hottest = np.argsort(self.d_o)[-k:]
            contrib = p.oar_gy[np.ix_(hottest, idx)].sum(axis=0)
            s = int(idx[int(np.argmax(contrib))])
            before, cov = self.chosen.copy(), self.coverage()
            c = self.chosen.copy()
            c[s] = False
            self.set_chosen(c)
            self.tabu[s] = True
            self.grow_deadline = self.deadline
            self.grow()
            if self.coverage() <= cov + 1e-12:
                self.set_chosen(before)

    def prune(self) -> None:
        """Drop seeds (the hottest first) while the coverage reached still holds."""
        p = self.p
        if not p.target_gy.shape[0]:
            return
        need = min(p.coverage_fraction, self.coverage())
        for s in sorted(np.flatnonzero(self.chosen), key=lambda j: -self.hot[j]):
            trial = self.d_t - p.target_gy[:, s]
            if self.coverage(trial) >= need - 1e-12:
                self.chosen[s] = False
                self.d_t = trial
        self.set_chosen(self.chosen)


def solve_greedy(
    p: Problem,
    *,
    cord_weight: float | None = None,
    refill_rounds: int = 30,
    deadline: float = math.inf,
    weights: tuple[float, ...] = CORD_WEIGHTS,
    complete_first: bool = True,
    headroom_weight: float = 0.0,
) -> Solution:
    """Greedy deficit reduction under the cord limit, refill swaps, then seed removal (module
    docstring); with ``cord_weight`` None, the best over ``weights``. Past
    ``deadline`` (``time.perf_counter()`` s) no further weight is tried and a run stops
    refilling where it is (``cut_short``; the cord limit still holds); it stops growing too,
    except the first run's first growth with ``complete_first`` (so there is always a plan
    that covers what one greedy pass can)."""
    if cord_weight is None:
        best: Solution | None = None
        t0 = time.perf_counter()
        cut = False
        for i, w in enumerate(weights if p.oar_gy.shape[0] else (0.0,)):
            if i and time.perf_counter() > deadline:
                cut = True
                break
            sol = solve_greedy(
                p,
                cord_weight=w,
                refill_rounds=refill_rounds,
                deadline=deadline,
                complete_first=complete_first and i == 0,
                headroom_weight=headroom_weight,
            )
            cut = cut or sol.cut_short
            best = _better(best, sol, p.coverage_fraction)
        assert best is not None
        best.seconds = time.perf_counter() - t0
        best.cut_short = cut
        return best
    t0 = time.perf_counter()
    g = _Greedy(p, cord_weight, deadline, math.inf if complete_first else None, headroom_weight)
    g.grow()
    g.refill(refill_rounds)
    g.prune()
    sol = evaluate(p, np.flatnonzero(g.chosen), "greedy", time.perf_counter() - t0)
    sol.notes.append(f"greedy cord weight {cord_weight:g}")
    sol.cut_short = g.cut_short
    return sol


def solve_milp(p: Problem, *, time_limit_s: float = 5.0, max_points: int = 700) -> Solution | None:
    """The mixed-integer programme (module docstring) with HiGHS; None without an incumbent."""
    t0 = time.perf_counter()
    S, N = p.n_slots, p.n_needles
    at = p.target_gy
    if at.shape[0] > max_points:
        idx = np.random.default_rng(3).choice(at.shape[0], max_points, replace=False)
        at = at[np.sort(idx)]
    P = at.shape[0]
    # Cord rows that can never bind (all slots together stay under the limit) are dropped.
    ao = p.oar_gy
    if ao.shape[0]:
        ao = ao[ao.sum(axis=1) > p.oar_limit_gy]
    nw = ao.shape[0] if p.oar_hot_points > 1 else 0
    nv = S + N + P + 1 + nw
    ix, iy, iz, isl = 0, S, S + N, S + N + P
    hot = at.mean(axis=0) / p.coverage_gy if P else np.zeros(S)
    c = np.zeros(nv)
    c[ix : ix + S] = 1.0 + p.hot_weight * hot
    c[iy : iy + N] = p.needle_weight * p.needle_cost
    c[isl] = 1000.0 / max(P, 1)  # each uncovered point below the goal outweighs any seed
    rows, lo, hi = [], [], []
    # (1) coverage per point: A x - cov z >= 0 (entries < 1 % PD dropped: stricter).
    a_sp = sparse.csr_matrix(np.where(at >= 0.01 * p.coverage_gy, at, 0.0))
    z_sp = sparse.diags(np.full(P, -p.coverage_gy), shape=(P, P))
    rows.append(
        sparse.hstack([a_sp, sparse.csr_matrix((P, N)), z_sp, sparse.csr_matrix((P, 1 + nw))])
    )
    lo.append(np.zeros(P))
    hi.append(np.full(P, np.inf))
    # (2) coverage count + slack >= K.
    k = math.ceil(p.coverage_fraction * P - 1e-9)
    r = np.zeros((1, nv))
    r[0, iz : iz + P] = 1.0
    r[0, isl] = 1.0
    rows.append(sparse.csr_matrix(r))
    lo.append(np.array([k]))
    hi.append(np.array([np.inf]))
    # (3) cord points: A_o x - M w <= limit, at most k - 1 points above it (Σ w <= k - 1).
    m = ao.shape[0]
    if m:
        big = ao.sum(axis=1) - p.oar_limit_gy
        w_cols = sparse.diags(-big, shape=(m, m)) if p.oar_hot_points > 1 else None
        blocks = [sparse.csr_matrix(ao), sparse.csr_matrix((m, nv - S - nw))]
        if w_cols is not None:
            blocks.append(w_cols)
        rows.append(sparse.hstack(blocks))
        lo.append(np.full(m, -np.inf))
        hi.append(np.full(m, p.oar_limit_gy))
        if w_cols is not None:
            r = np.zeros((1, nv))
            r[0, nv - m :] = 1.0
            rows.append(sparse.csr_matrix(r))
            lo.append(np.array([-np.inf]))
            hi.append(np.array([float(p.oar_hot_points - 1)]))
    # (4) x_s <= y_n(s).
    link = sparse.lil_matrix((S, nv))
    for s in range(S):
        link[s, ix + s] = 1.0
        link[s, iy + int(p.slot_needle[s])] = -1.0
    rows.append(link.tocsr())
    lo.append(np.full(S, -np.inf))
    hi.append(np.zeros(S))
    # (5, 6) conflicts.
    pairs = [(ix + a, ix + b) for a, b in p.slot_conflicts]
    pairs += [(iy + a, iy + b) for a, b in p.needle_conflicts]
    if pairs:
        cm = sparse.lil_matrix((len(pairs), nv))
        for i, (a, b) in enumerate(pairs):
            cm[i, a] = 1.0
            cm[i, b] = 1.0
        rows.append(cm.tocsr())
        lo.append(np.full(len(pairs), -np.inf))
        hi.append(np.ones(len(pairs)))
    # (7) needle count.
    r = np.zeros((1, nv))
    r[0, iy : iy + N] = 1.0
    rows.append(sparse.csr_matrix(r))
    lo.append(np.array([-np.inf]))
    hi.append(np.array([float(p.max_needles)]))
    a_all = sparse.vstack(rows).tocsr()
    lb = np.zeros(nv)
    ub = np.ones(nv)
    ub[isl] = P
    for n in p.locked:
        lb[iy + n] = 1.0
    for n in p.excluded:
        ub[iy + n] = 0.0
    integrality = np.ones(nv)
    integrality[isl] = 0
    res = milp(
        c,
        constraints=LinearConstraint(a_all, np.concatenate(lo), np.concatenate(hi)),
        integrality=integrality,
        bounds=Bounds(lb, ub),
        options={"time_limit": max(0.5, time_limit_s), "mip_rel_gap": 0.02, "disp": False},
    )
    if res.x is None:
        return None
    slots = np.flatnonzero(res.x[ix : ix + S] > 0.5)
    sol = evaluate(p, slots, "milp", time.perf_counter() - t0)
    sol.notes.append(f"HiGHS: {res.message}")
    # The sparsified/pruned programme keeps the cord limit on the kept rows; check all rows.
    if p.oar_gy.shape[0] and sol.oar_max_gy > p.oar_limit_gy + 1e-6:
        return None
    return sol


def solve(
    p: Problem,
    *,
    method: str = "auto",
    time_limit_s: float = 5.0,
    deadline: float = math.inf,
    weights: tuple[float, ...] = CORD_WEIGHTS,
    headroom_weight: float = 0.0,
    refill_rounds: int = 30,
) -> Solution:
    """Solve with ``method`` "greedy", "milp" or "auto" (both; the better, module docstring);
    the greedy (cord ``weights``, ``headroom_weight``, ``refill_rounds``: :func:`solve_greedy`)
    stops at ``deadline``, HiGHS at ``time_limit_s``."""
    if method not in ("greedy", "milp", "auto"):
        raise ValueError(f"unknown method {method!r}")
    g = None
    if method in ("greedy", "auto"):
        g = solve_greedy(
            p,
            deadline=deadline,
            weights=weights,
            headroom_weight=headroom_weight,
            refill_rounds=refill_rounds,
        )
    m = solve_milp(p, time_limit_s=time_limit_s) if method in ("milp", "auto") else None
    best = _better(g, m, p.coverage_fraction)
    if best is None:  # milp alone without an incumbent
        best = solve_greedy(
            p,
            deadline=deadline,
            weights=weights,
            headroom_weight=headroom_weight,
            refill_rounds=refill_rounds,
        )
        best.notes.append("HiGHS found no solution in the time limit: greedy used")
    return best
