"""Work off the GUI thread, and the status bar's Docker / AWS readiness probes.

`BackgroundTask` runs one plain function on `QThreadPool.globalInstance()` and reports back through
signals of a QObject that lives on the GUI thread, so the slots run there (style-anchors section 8:
connect on the GUI thread, to bound methods or callables created there, never from the worker).

The probes import docker and boto3 lazily, inside the worker, so neither slows the window's start,
and neither a hung Docker socket nor a slow AWS endpoint can freeze the window.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from PySide6.QtCore import QObject, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from trainer_gui.ui.icons import ERROR_COLOR, MUTED_COLOR, OK_COLOR, WARN_COLOR

log = logging.getLogger(__name__)


class BackgroundTask(QObject):
    """One function run on the global thread pool; the result comes back as a signal.

    The task keeps itself alive (a class-level set) until its result has been delivered on the
    GUI thread, so callers may fire and forget.
    """

    sig_done = Signal(object)
    """The function's return value."""
    sig_failed = Signal(object, str)
    """The exception it raised, and its formatted traceback."""

    _live: ClassVar[set[BackgroundTask]] = set()

    def __init__(self, fn: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fn = fn

    def start(self, pool: QThreadPool | None = None) -> BackgroundTask:
        # Connected last so the callers' slots run first: releasing the last reference deletes
        # this QObject, and Qt drops queued calls still addressed to a deleted object.
        self.sig_done.connect(self._release)
        self.sig_failed.connect(self._release)
        BackgroundTask._live.add(self)
        (pool or QThreadPool.globalInstance()).start(self._run)
        return self

    def _run(self) -> None:  # worker thread
        try:
            result = self._fn()
        except Exception as exc:
            self.sig_failed.emit(exc, traceback.format_exc())
        else:
            self.sig_done.emit(result)

    @Slot()
    def _release(self) -> None:
        # Let go from the event loop, not from inside this object's own slot call.
        QTimer.singleShot(0, functools.partial(BackgroundTask._live.discard, self))


def run_task(
    fn: Callable[[], Any],
    on_done: Callable[[Any], None] | None = None,
    on_failed: Callable[[BaseException, str], None] | None = None,
    pool: QThreadPool | None = None,
) -> BackgroundTask:
    """Run `fn` on the pool; `on_done(result)` / `on_failed(exc, tb)` run on the GUI thread.

    Call this on the GUI thread only (the connections are made here).
    """
    task = BackgroundTask(fn)
    if on_done is not None:
        task.sig_done.connect(on_done)
    if on_failed is not None:
        task.sig_failed.connect(on_failed)
    else:
        task.sig_failed.connect(_log_failure)
    return task.start(pool)


_writes: QThreadPool | None = None


def store_writes() -> QThreadPool:
    """A one-thread pool for the window's own writes to the store: they run in the order they
    were asked for (the global pool runs tasks side by side, in any order)."""
    global _writes
    if _writes is None:
        _writes = QThreadPool()
        _writes.setMaxThreadCount(1)
    return _writes


def _log_failure(exc: BaseException, tb: str) -> None:
    log.error("background task failed: %s\n%s", exc, tb)


def error_text(exc: BaseException) -> str:
    """What a dialog shows for an error: a user error's own sentence; anything else one short
    line naming its type, never a traceback."""
    from trainer_gui.core.errors import UserError

    if isinstance(exc, UserError):
        return str(exc)
    first = (str(exc).strip().splitlines() or [""])[0]
    if len(first) > 200:
        first = first[:199] + "…"
    return f"Unexpected error ({type(exc).__name__}){': ' + first if first else ''}"


@dataclass(frozen=True)
class Outcome:
    """What a tagged background call returned or raised. The tag says which request it answers,
    so a dialog drops answers to questions it has asked again since."""

    tag: Any
    value: Any = None
    error: BaseException | None = None

    @property
    def message(self) -> str:
        return "" if self.error is None else error_text(self.error)


def run_tagged(tag: Any, fn: Callable[[], Any], on_outcome: Callable[[Outcome], None]) -> None:
    """`run_task` for dialogs: value and error reach one slot (a bound method, which Qt drops
    if the dialog is gone first) as an `Outcome`; unexpected errors are logged with their
    traceback."""
    from trainer_gui.core.errors import UserError

    def run() -> Outcome:
        try:
            return Outcome(tag, value=fn())
        except Exception as exc:
            if not isinstance(exc, UserError):
                log.exception("background task %r failed", tag)
            return Outcome(tag, error=exc)

    run_task(run, on_outcome)


# -- probes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    """What one probe found. `state`: "ok" (usable), "warn" (maybe) or "bad" (not usable)."""

    name: str
    state: str
    text: str
    detail: str


def probe_docker() -> ProbeResult:
    """Can we talk to a Docker engine? Runs on a worker thread; imports docker lazily."""
    from trainer_gui.core.docker_util import docker_client
    from trainer_gui.core.errors import UserError

    try:
        client = docker_client(timeout=5)
    except UserError as exc:
        return ProbeResult("docker", "bad", "Docker: not available", str(exc))
    try:
        version = client.version()
    except Exception as exc:
        return ProbeResult(
            "docker", "bad", "Docker: not available", f"The engine did not answer: {exc}"
        )
    finally:
        with contextlib.suppress(Exception):
            client.close()
    ver = str(version.get("Version", "")) if isinstance(version, dict) else ""
    os_name = str(version.get("Os", "")) if isinstance(version, dict) else ""
    return ProbeResult(
        "docker",
        "ok",
        f"Docker {ver}".strip(),
        f"The Docker engine answers (version {ver or '?'}, {os_name or 'unknown OS'}); the docker "
        "backend can run jobs.",
    )


def probe_aws() -> ProbeResult:
    """Are AWS credentials available (boto3's chain) and accepted? Never shows the secrets.

    Checks the profile and region saved in the AWS settings (what SageMaker jobs use when their
    spec leaves them empty); without saved ones, boto3's defaults.
    """
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return ProbeResult("aws", "bad", "AWS: boto3 missing", "boto3 is not installed.")
    from trainer_gui.core.aws.defaults import load_aws_defaults

    saved = load_aws_defaults()
    profile = saved.profile or None
    where = f"the AWS profile {profile!r}" if profile else "boto3's default credential chain"
    try:
        session = boto3.Session(profile_name=profile, region_name=saved.region or None)
        creds = session.get_credentials()
    except Exception as exc:
        return ProbeResult(
            "aws",
            "bad",
            "AWS: config error",
            f"Cannot read the AWS configuration for {where}: {exc}",
        )
    if creds is None:
        return ProbeResult(
            "aws",
            "bad",
            "AWS: no credentials",
            f"No AWS credentials were found for {where} (environment, ~/.aws, SSO). The sagemaker "
            "backend needs them; run `aws configure` or `aws sso login`, or pick another profile "
            "in the AWS settings.",
        )
    region = session.region_name or "us-east-1"
    try:
        sts = session.client(
            "sts",
            region_name=region,
            config=Config(connect_timeout=4, read_timeout=6, retries={"max_attempts": 1}),
        )
        ident = sts.get_caller_identity()
    except ClientError as exc:
        return ProbeResult(
            "aws", "bad", "AWS: credentials rejected", f"AWS refused them ({where}): {exc}"
        )
    except BotoCoreError as exc:
        return ProbeResult(
            "aws",
            "warn",
            "AWS: credentials found",
            f"Credentials were found ({where}) but could not be checked ({exc}); are you offline?",
        )
    account = str(ident.get("Account", "?"))
    named = f"profile {profile}, " if profile else ""
    return ProbeResult(
        "aws",
        "ok",
        f"AWS: {account} ({region})",
        f"AWS credentials work: {named}account {account}, region {region}.",
    )


DEFAULT_PROBES: dict[str, Callable[[], ProbeResult]] = {"docker": probe_docker, "aws": probe_aws}

_DOT = {"ok": OK_COLOR, "warn": WARN_COLOR, "bad": ERROR_COLOR, "unknown": MUTED_COLOR}


class ProbeLabel(QLabel):
    """A coloured dot and a short text; the tooltip says what was found and what to do.
    A click emits `sig_clicked`, so the window can open the matching settings."""

    sig_clicked = Signal(str)
    """The probe's name."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.state = "unknown"
        self.show_result(ProbeResult(name, "unknown", f"{name.capitalize()}: checking…", ""))

    def show_result(self, result: ProbeResult) -> None:
        self.state = result.state
        color = _DOT.get(result.state, _DOT["unknown"])
        self.setText(f'<span style="color:{color}">●</span> {result.text}')
        self.setToolTip(result.detail or result.text)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(
            event.position().toPoint()
        ):
            self.sig_clicked.emit(self.name)
        super().mouseReleaseEvent(event)


class BackendStatus(QWidget):
    """Status-bar widget: one label per probe, refreshed every few minutes and on demand."""

    sig_probed = Signal(object)
    """A ProbeResult, on the GUI thread."""

    def __init__(
        self,
        probes: dict[str, Callable[[], ProbeResult]] | None = None,
        parent: QWidget | None = None,
        interval_ms: int = 120_000,
    ) -> None:
        super().__init__(parent)
        self._probes = dict(DEFAULT_PROBES if probes is None else probes)
        self._running: set[str] = set()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 4, 0)
        layout.setSpacing(14)
        self.labels: dict[str, ProbeLabel] = {}
        for name in self._probes:
            label = ProbeLabel(name, self)
            self.labels[name] = label
            layout.addWidget(label)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.probe)

    def start(self) -> None:
        """First probe now, then periodically; calling it again does nothing."""
        if self._timer.isActive():
            return
        self.probe()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @Slot()
    def probe(self) -> None:
        for name, fn in self._probes.items():
            if name in self._running:
                continue
            self._running.add(name)
            task = BackgroundTask(_guarded(name, fn))
            task.sig_done.connect(self._on_result)
            task.start()

    @Slot(object)
    def _on_result(self, result: ProbeResult) -> None:
        self._running.discard(result.name)
        label = self.labels.get(result.name)
        if label is not None:
            label.show_result(result)
        self.sig_probed.emit(result)

    def result_text(self, name: str) -> str:
        label = self.labels[name]
        return label.toolTip()


def _guarded(name: str, fn: Callable[[], ProbeResult]) -> Callable[[], ProbeResult]:
    """A probe that never raises: an unexpected error becomes a "bad" result."""

    def run() -> ProbeResult:
        try:
            return fn()
        except Exception as exc:
            log.exception("probe %s failed", name)
            return ProbeResult(
                name, "bad", f"{name.capitalize()}: unknown", f"The check failed: {exc}"
            )

    return run
