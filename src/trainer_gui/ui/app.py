"""Application entry: QApplication, looks (native style; light or dark following the system, or
as chosen in View > Theme), the main window, and a last-resort error dialog instead of a traceback.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)
APP_NAME = "Trainer GUI"
ORG_NAME = "trainer-gui"
_FORCED_PROPERTY = "trainer_gui_forced_palette"  # "dark"/"light": the palette we put in place
_THEME_PROPERTY = "trainer_gui_theme"
THEMES = ("system", "light", "dark")
THEME_ENV = "TRAINER_GUI_THEME"
_hook_busy = False


# -- the Qt binding ------------------------------------------------------------------------------


def binding_problem() -> str | None:
    """Why the installed PySide6 cannot run the app, or None.

    PySide6 6.12.0 returns `None` from methods that return nothing without the reference
    CPython < 3.12 expects, so every such call (thousands per repaint) takes one reference
    from None and the process dies within seconds with "Fatal Python error: none_dealloc".
    pyproject.toml pins PySide6 below 6.12; this probe catches an environment that got the
    broken version anyway and says so, instead of a crash that names nothing. (On 3.12+ None
    is immortal and the bug is harmless; the probe is skipped.)
    """
    if sys.version_info >= (3, 12) or platform.python_implementation() != "CPython":
        return None
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import QPointF

    calls = 64
    probe = QPointF()
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setX(1.0)
    if before - sys.getrefcount(None) < calls:
        return None
    python = ".".join(map(str, sys.version_info[:3]))
    return (
        f"PySide6 {pyside_version} does not work with Python {python}: it loses a reference "
        "to None on every call and the app would crash. Install PySide6 below 6.12, e.g. "
        "pip install 'PySide6-Essentials<6.12', or use Python 3.12 or newer."
    )


# -- responsiveness ------------------------------------------------------------------------------

SWITCH_INTERVAL = 0.001  # seconds; Python's default is 0.005
POOL_THREADS = 8
GC_THRESHOLDS = (20_000, 20, 10)  # Python's default is (700, 10, 10)


def tune_for_responsiveness() -> None:
    """Interpreter settings for a GUI thread that shares the process with worker threads.

    Call once the window is up. `gc.freeze()` moves the ~100,000 objects of the started app
    (modules, functions, Qt wrappers) out of the collector's reach, so a full collection,
    which streaming data triggers every few seconds, scans what came later (~1 ms) instead
    of everything (~50-150 ms on the GUI thread). A larger first-generation threshold makes
    the young collections rarer. A 1 ms switch interval bounds how long the GUI thread waits
    for the GIL when a pool thread (a log tail, a store read) is busy in Python: it waits up
    to one interval at every entry into Python, and a repaint makes hundreds. Short scheduler
    slices (ui/sched.py, Linux 6.12+) let it run sooner when every core is busy.
    """
    import gc

    from trainer_gui.ui import gcguard

    gc.collect()
    gc.freeze()
    gcguard.enable_refreeze()  # and again once later long-lived objects (spare plots) exist
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL)
    from trainer_gui.ui import sched

    sched.ask_short_slices()  # this (the GUI) thread waits less behind busy cores


# -- looks -------------------------------------------------------------------------------------


def _palette(
    window: tuple[int, ...],
    base: tuple[int, ...],
    text: tuple[int, ...],
    disabled: tuple[int, ...],
    alternate: tuple[int, ...],
    tip: tuple[int, ...],
    placeholder: tuple[int, ...],
    bright: tuple[int, ...],
    link: tuple[int, ...],
    highlight: tuple[int, ...],
) -> QPalette:
    """Every role the app's widgets use, from one set of colours (the two themes differ only
    in their colours)."""
    from PySide6.QtGui import QColor, QPalette

    p = QPalette()
    role = QPalette.ColorRole
    colours = {
        role.Window: window,
        role.WindowText: text,
        role.Base: base,
        role.AlternateBase: alternate,
        role.ToolTipBase: tip,
        role.ToolTipText: text,
        role.PlaceholderText: placeholder,
        role.Text: text,
        role.Button: window,
        role.ButtonText: text,
        role.BrightText: bright,
        role.Link: link,
        role.Highlight: highlight,
        role.HighlightedText: (255, 255, 255),
    }
    for which, rgb in colours.items():
        p.setColor(which, QColor(*rgb))
    for which in (role.WindowText, role.Text, role.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, which, QColor(*disabled))
    return p


def dark_palette() -> QPalette:
    return _palette(
        window=(45, 45, 48),
        base=(30, 30, 32),
        text=(230, 230, 230),
        disabled=(127, 127, 127),
        alternate=(40, 40, 43),
        tip=(60, 60, 64),
        placeholder=(127, 127, 127),
        bright=(255, 90, 90),
        link=(90, 160, 255),
        highlight=(47, 111, 216),
    )


def light_palette() -> QPalette:
    """Fusion's light colours, spelled out: a dark desktop's palette must not leak in."""
    return _palette(
        window=(239, 239, 239),
        base=(255, 255, 255),
        text=(0, 0, 0),
        disabled=(120, 120, 120),
        alternate=(247, 247, 247),
        tip=(255, 255, 220),
        placeholder=(0, 0, 0, 128),
        bright=(255, 255, 255),
        link=(0, 0, 255),
        highlight=(48, 140, 198),
    )


def env_theme() -> str | None:
    """`TRAINER_GUI_THEME=system|light|dark`: the theme for this start, in place of the one
    chosen in View > Theme (screenshots, testing); None when unset or not one of those."""
    theme = os.environ.get(THEME_ENV, "").strip().lower()
    return theme if theme in THEMES else None


def _scheme_for(theme: str, system: Qt.ColorScheme) -> Qt.ColorScheme:
    from PySide6.QtCore import Qt

    if theme == "dark":
        return Qt.ColorScheme.Dark
    if theme == "light":
        return Qt.ColorScheme.Light
    return system


def current_theme(app: QApplication) -> str:
    """The theme in force: the one chosen last, else the environment's, else "system"."""
    chosen = app.property(_THEME_PROPERTY)
    if isinstance(chosen, str) and chosen in THEMES:
        return chosen
    return env_theme() or "system"


def apply_color_scheme(app: QApplication, scheme: Qt.ColorScheme | None = None) -> bool:
    """Make the app light or dark as `scheme` says (default: the current theme's); returns
    whether the app now looks dark.

    Windows 11, macOS and most Linux desktops hand Qt a palette that fits the system's setting.
    Where the wanted scheme and the palette differ (plain X11, some window managers, or a theme
    chosen against the system's), the app switches to Fusion with a palette of its own, and
    back to the platform's style and palette when they agree again.
    """
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QPalette

    if scheme is None:
        scheme = _scheme_for(current_theme(app), app.styleHints().colorScheme())
    wanted = {Qt.ColorScheme.Dark: "dark", Qt.ColorScheme.Light: "light"}.get(scheme, "")
    forced = str(app.property(_FORCED_PROPERTY) or "")
    if forced and forced != wanted:  # back to the platform's looks first
        original = app.property("trainer_gui_style")
        if original:
            app.setStyle(str(original))
        app.setPalette(QPalette())  # no colours of our own: the platform's (or style's) palette
        app.setProperty(_FORCED_PROPERTY, "")
        forced = ""
    dark_now = app.palette().color(QPalette.ColorRole.Window).lightness() < 128
    if wanted and not forced and (wanted == "dark") != dark_now:
        app.setProperty("trainer_gui_style", app.style().name())
        app.setStyle("Fusion")
        app.setPalette(dark_palette() if wanted == "dark" else light_palette())
        app.setProperty(_FORCED_PROPERTY, wanted)
    return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


def apply_theme(app: QApplication, theme: str) -> bool:
    """Use `theme` ("system", "light" or "dark") from now on, live; returns whether the app
    now looks dark. Where the platform can switch its own palette (Qt 6.8+ on Windows, macOS,
    some Linux desktops) it is asked to; elsewhere the app's own palettes step in."""
    from PySide6.QtCore import Qt

    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r}; one of {', '.join(THEMES)}")
    app.setProperty(_THEME_PROPERTY, theme)
    hints = app.styleHints()
    if hasattr(hints, "setColorScheme"):
        hints.setColorScheme(_scheme_for(theme, Qt.ColorScheme.Unknown))
    return apply_color_scheme(app)


def setup_application(app: QApplication) -> None:
    """Names, icon and colours; call once, before the first window."""
    from PySide6.QtCore import QThreadPool

    from trainer_gui import __version__
    from trainer_gui.ui.icons import app_icon

    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("trainer-gui")
    app.setWindowIcon(app_icon())
    # The pool's tasks mostly wait (on the job host, Docker, AWS, the disk), so more of them
    # than cores: a slow one (a submit checking an interpreter) does not hold up the others.
    pool = QThreadPool.globalInstance()
    pool.setMaxThreadCount(max(pool.maxThreadCount(), POOL_THREADS))
    apply_color_scheme(app)
    app.styleHints().colorSchemeChanged.connect(
        lambda scheme: apply_color_scheme(app, _scheme_for(current_theme(app), scheme))
    )


# -- errors ------------------------------------------------------------------------------------


def show_unexpected_error(exc: BaseException, crash_log: Path | None) -> None:
    """A short dialog for an error nobody caught: what happened and where the details are."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    from trainer_gui.core.errors import UserError

    if QApplication.instance() is None:
        return
    if isinstance(exc, UserError):
        QMessageBox.warning(None, APP_NAME, str(exc))
        return
    where = f"\n\nThe details were written to {crash_log}." if crash_log else ""
    QMessageBox.critical(
        None,
        f"{APP_NAME}: something went wrong",
        f"An unexpected error occurred: {type(exc).__name__}: {exc}{where}\n\n"
        "Your jobs keep running. If this keeps happening, please report it with that file.",
    )


def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """Log the traceback to data_home()/crash.log and show a short dialog, never a traceback."""
    global _hook_busy
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    from trainer_gui.core.errors import UserError
    from trainer_gui.ui.main_window import log_crash

    path = None
    if not isinstance(exc, UserError):
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("uncaught exception\n%s", text)
        path = log_crash(text)
    if _hook_busy:  # an error while showing the dialog: logged, not shown again
        return
    _hook_busy = True
    try:
        show_unexpected_error(exc, path)
    finally:
        _hook_busy = False


def install_excepthook() -> None:
    sys.excepthook = excepthook


# -- entry -------------------------------------------------------------------------------------


def main(project: str | None = None) -> int:
    """Open the window (on `project`, a folder or a spec file, if given) and run until closed."""
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    from PySide6.QtCore import QThreadPool, QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from trainer_gui.core.errors import UserError
    from trainer_gui.core.store import Store
    from trainer_gui.services.job_host import make_job_service
    from trainer_gui.ui.gcguard import GuiThreadCollector
    from trainer_gui.ui.main_window import MainWindow
    from trainer_gui.ui.tasks import store_writes

    problem = binding_problem()
    if problem is not None:
        print(f"trainer-gui: {problem}", file=sys.stderr)
        return 2
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    setup_application(app)
    install_excepthook()
    collector = GuiThreadCollector(app)  # cyclic GC on this thread only (ui/gcguard.py)
    try:
        store = Store()
    except UserError as exc:
        QMessageBox.critical(None, APP_NAME, str(exc))
        return 2
    service = make_job_service(store)
    window = MainWindow(store, service)
    window.show()
    QTimer.singleShot(1000, tune_for_responsiveness)  # once the window is up and drawn
    if project:
        target = Path(project).expanduser()
        try:
            if target.is_file():
                window.projects.open_folder(target.resolve().parent)
                window.open_spec(target)
            else:
                window.projects.open_folder(target)
        except UserError as exc:
            window.report_error("Cannot open the project", exc)
    try:
        code = int(app.exec())
    finally:
        service.shutdown()  # the job host lets go of the jobs: they keep running
        store_writes().waitForDone(5000)
        QThreadPool.globalInstance().waitForDone(5000)
        collector.stop()
        store.close()
    return code
