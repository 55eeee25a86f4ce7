"""Preferences through QSettings (an INI file at $SURGTWIN_SETTINGS when set, e.g. in tests)."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings

MAX_RECENT = 8


def app_settings() -> QSettings:
    path = os.environ.get("SURGTWIN_SETTINGS")
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("surgtwin", "surgtwin")


def recent_files(s: QSettings) -> list[str]:
    v = s.value("recent", [])
    if isinstance(v, str):
        v = [v]
    return [str(x) for x in (v or [])]


def add_recent(s: QSettings, path: str) -> list[str]:
    items = [p for p in recent_files(s) if p != path]
    items.insert(0, path)
    items = items[:MAX_RECENT]
    s.setValue("recent", items)
    return items
