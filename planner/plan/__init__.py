"""The plan document: immutable values with stable ids, commands, the undo history, plan files.

Public API (import from the modules):

- :mod:`planner.plan.model`: ``Plan``, ``CTReference``, ``Structure``, ``Prescription``,
  ``SourceSpec``, ``Needle``, ``Seed``, ``Goal``; the master structure representation and the
  one volume rule are stated there.
- :mod:`planner.plan.commands`: the edits (``EditMask``, ``AddStructure`` …) and the changes
  the history keeps.
- :mod:`planner.plan.document`: ``PlanDocument`` (current plan, ``History``, psygnal events).
- :mod:`planner.plan.plan_file`: ``save_plan`` / ``load_plan`` (``.seedplan``).
- :mod:`planner.plan.recovery`: autosave, session lock, crash recovery.
- :mod:`planner.plan.new_plan`: a plan from a CT, an RTSTRUCT and mask images.
- :mod:`planner.plan.dvh`: ``structure_dvh`` (the plan's DVH of a structure).
- :mod:`planner.plan.needles`: needle geometry (length, depth, angles, slice crossings) and its
  non-blocking warnings; :mod:`planner.plan.needle_checks`: the evented needle table.
- :mod:`planner.plan.loading`: seed loading along a needle, template needles, loading summary.
- :mod:`planner.plan.needle_commands`: undoable needle and seed edits (drags merge).
- :mod:`planner.plan.dosimetry`: ``compute_plan_dosimetry`` (exact dose, DVHs, metrics, goals).
- :mod:`planner.plan.live_dose` and :mod:`planner.plan.isolines`: the live isodoses.
- :mod:`planner.plan.plan_ct`: finding a plan's CT; :mod:`planner.plan.clock`: time stamps.
"""
