"""Cohort re-analysis (issue 15): cases (discovery, content hashes), the Dask pipeline, the
per-case table with the paper's summary statistics, and the one-page PDF.

Modules: :mod:`planner.cohort.cases`, :mod:`planner.cohort.run`, :mod:`planner.cohort.table`,
:mod:`planner.cohort.report`. Qt-free; uses :mod:`planner.postop` and :mod:`planner.plan`.
"""
