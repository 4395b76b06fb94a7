"""What the window remembers between runs: geometry, dock/toolbar state, splitters, columns, and
the theme chosen in View > Theme.

Kept in an INI file inside the app's data folder (so `TRAINER_GUI_HOME` isolates it, like the
store), through QSettings, which handles the binary state blobs Qt produces.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from trainer_gui.core.paths import data_home
from trainer_gui.ui.app import THEMES

log = logging.getLogger(__name__)

SETTINGS_FILE = "gui-settings.ini"
SCHEMA = 1
THEME_KEY = "view/theme"


class WindowSettings:
    """A thin typed wrapper over QSettings; every getter has a default and never raises."""

    def __init__(self, settings: QSettings | None = None) -> None:
        if settings is None:
            settings = QSettings(str(data_home() / SETTINGS_FILE), QSettings.Format.IniFormat)
        self.qsettings = settings
        if self._int("schema", 0) != SCHEMA:  # an unknown (older/newer) layout: start fresh
            self.qsettings.clear()
            self.qsettings.setValue("schema", SCHEMA)

    # -- typed access ------------------------------------------------------------------------

    def _int(self, key: str, default: int) -> int:
        value: Any = self.qsettings.value(key, default)
        try:
            return int(value)
        except (TypeError, ValueError):
            return default

    def get_bytes(self, key: str) -> QByteArray | None:
        value = self.qsettings.value(key)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def set_bytes(self, key: str, value: QByteArray) -> None:
        self.qsettings.setValue(key, value)

    def get_int(self, key: str, default: int = 0) -> int:
        return self._int(key, default)

    def set_int(self, key: str, value: int | None) -> None:
        if value is None:
            self.qsettings.remove(key)
        else:
            self.qsettings.setValue(key, int(value))

    def get_str(self, key: str, default: str = "") -> str:
        value = self.qsettings.value(key, default)
        return value if isinstance(value, str) else default

    def set_str(self, key: str, value: str) -> None:
        self.qsettings.setValue(key, value)

    @property
    def theme(self) -> str:
        """ "system" (follow the desktop), "light" or "dark"; "system" for anything else."""
        value = self.get_str(THEME_KEY, "system")
        return value if value in THEMES else "system"

    @theme.setter
    def theme(self, value: str) -> None:
        if value not in THEMES:
            raise ValueError(f"unknown theme {value!r}; one of {', '.join(THEMES)}")
        self.set_str(THEME_KEY, value)

    def sync(self) -> None:
        self.qsettings.sync()
