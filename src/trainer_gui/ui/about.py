"""Help > About: version, where the app keeps its files, the Qt/Python it runs on, the licence.

    from trainer_gui.ui.about import show_about
    action.triggered.connect(lambda: show_about(window))

`about_info()` is the same facts as plain data (tests, bug reports); the dialog's "Copy" button
puts them on the clipboard as text.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QDialog, QWidget


log = logging.getLogger(__name__)
APP_NAME = "Trainer GUI"
LICENSE = "Apache-2.0"
DESCRIPTION = (
    "Train PyTorch models on this machine, in local Docker containers, or on Amazon SageMaker "
    "from one job spec."
)


def _build_kind() -> str:
    if getattr(sys, "frozen", False):
        return "installed bundle"
    return "from source"


def about_info() -> dict[str, str]:
    """Label -> value, in display order."""
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    from trainer_gui import __version__
    from trainer_gui.core.paths import data_home, resources_root

    home = str(data_home())
    if os.environ.get("TRAINER_GUI_HOME"):
        home += "  (set by TRAINER_GUI_HOME)"
    return {
        "Version": f"{__version__} ({_build_kind()})",
        "Data folder": home,
        "Resources": str(resources_root()),
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "Qt": f"{qVersion()} (PySide6 {pyside_version})",
        "System": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Licence": LICENSE,
    }


def about_text() -> str:
    """The facts as plain text, for bug reports."""
    lines = [APP_NAME]
    lines += [f"{label}: {value}" for label, value in about_info().items()]
    return "\n".join(lines) + "\n"


def build_about_dialog(parent: QWidget | None = None) -> QDialog:
    """The About dialog, not yet shown."""
    from PySide6.QtCore import QSize, Qt, QUrl
    from PySide6.QtGui import QDesktopServices, QGuiApplication
    from PySide6.QtWidgets import (
        QDialog,
        QDialogButtonBox,
        QFormLayout,
        QHBoxLayout,
        QLabel,
        QPushButton,
        QVBoxLayout,
    )

    from trainer_gui.core.paths import data_home
    from trainer_gui.ui.icons import app_icon

    info = about_info()
    dialog = QDialog(parent)
    dialog.setObjectName("aboutDialog")
    dialog.setWindowTitle(f"About {APP_NAME}")
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    icon = QLabel()
    icon.setPixmap(app_icon().pixmap(QSize(64, 64)))
    icon.setAlignment(Qt.AlignmentFlag.AlignTop)
    title = QLabel(f"<h2 style='margin:0'>{APP_NAME}</h2>")
    version = QLabel(f"Version {info['Version']}")
    version.setObjectName("aboutVersion")
    blurb = QLabel(DESCRIPTION)
    blurb.setWordWrap(True)
    heading = QVBoxLayout()
    heading.addWidget(title)
    heading.addWidget(version)
    heading.addWidget(blurb)
    top = QHBoxLayout()
    top.addWidget(icon)
    top.addLayout(heading, 1)

    form = QFormLayout()
    for label, value in info.items():
        if label == "Version":
            continue
        field = QLabel(value)
        field.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        field.setWordWrap(True)
        form.addRow(f"{label}:", field)
    notice = QLabel(
        f"Licensed under the {LICENSE} licence. Qt is used under the LGPL-3.0 through PySide6; "
        "the bundled libraries keep their own licences."
    )
    notice.setWordWrap(True)
    notice.setEnabled(False)  # secondary text colour, in light and dark palettes

    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    copy = QPushButton("Copy")
    copy.setToolTip("Copy these details, e.g. for a bug report")
    copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(about_text()))
    buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
    open_folder = QPushButton("Open Data Folder")
    open_folder.clicked.connect(
        lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(data_home())))
    )
    buttons.addButton(open_folder, QDialogButtonBox.ButtonRole.ActionRole)
    buttons.rejected.connect(dialog.reject)

    layout = QVBoxLayout(dialog)
    layout.addLayout(top)
    layout.addSpacing(8)
    layout.addLayout(form)
    layout.addWidget(notice)
    layout.addWidget(buttons)
    dialog.setMinimumWidth(520)
    return dialog


def show_about(parent: QWidget | None = None) -> QDialog:
    """Open the About dialog (window-modal, not blocking) and return it; it deletes itself on
    close."""
    dialog = build_about_dialog(parent)
    dialog.open()
    return dialog
