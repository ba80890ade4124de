"""The time stamps plan files and documents carry (ISO 8601 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utc_now"]


def utc_now() -> str:
    """The current time, ISO 8601 UTC to the second (``2026-12-01T19:50:00Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
