"""Application entry: QApplication, the main window, and a last-resort error dialog."""

from __future__ import annotations

import sys


def main(project: str | None = None) -> int:
    from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

    from trainer_gui import __version__

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Trainer GUI")
    app.setApplicationVersion(__version__)
    window = QMainWindow()
    window.setWindowTitle(f"Trainer GUI {__version__}")
    text = f"Project: {project}" if project else "No project open"
    window.setCentralWidget(QLabel(text))
    window.resize(1200, 760)
    window.show()
    return int(app.exec())
