"""Data files shipped with SeedPlan (seed source tables, icons, report assets)."""

from __future__ import annotations

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent
SEEDS_DIR = RESOURCES_DIR / "seeds"
