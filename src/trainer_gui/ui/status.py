"""The status bar's Docker / AWS readiness probes (run with `ui.tasks.run_task`).

The probes import docker and boto3 lazily, inside the worker, so neither slows the window's start,
and neither a hung Docker socket nor a slow AWS endpoint can freeze the window.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from trainer_gui.ui.icons import ERROR_COLOR, MUTED_COLOR, OK_COLOR, WARN_COLOR
from trainer_gui.ui.tasks import BackgroundTask

log = logging.getLogger(__name__)


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
    spec leaves them empty) through the app's own session, as every AWS call does; one quick
    attempt with short timeouts, so an offline machine answers in seconds.
    """
    try:
        import boto3  # noqa: F401 - only to say so when it is missing
    except ImportError:
        return ProbeResult("aws", "bad", "AWS: boto3 missing", "boto3 is not installed.")
    from trainer_gui.core.aws.errors import AwsError, AwsNetworkError
    from trainer_gui.core.aws.session import AwsSession

    session = AwsSession.from_settings(attempts=1, connect_timeout=4, read_timeout=6)
    profile = session.profile
    where = f"the AWS profile {profile!r}" if profile else "boto3's default credential chain"
    try:
        boto = session.boto
        creds = boto.get_credentials()
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
    if not boto.region_name:  # STS answers in any region; the check needs one
        session = AwsSession(profile, "us-east-1", attempts=1, connect_timeout=4, read_timeout=6)
    region = session.region
    try:
        ident = session.identity()
    except AwsNetworkError as exc:
        return ProbeResult(
            "aws",
            "warn",
            "AWS: credentials found",
            f"Credentials were found ({where}) but could not be checked ({exc}); are you offline?",
        )
    except AwsError as exc:
        return ProbeResult(
            "aws", "bad", "AWS: credentials rejected", f"AWS refused them ({where}): {exc}"
        )
    named = f"profile {profile}, " if profile else ""
    return ProbeResult(
        "aws",
        "ok",
        f"AWS: {ident.account} ({region})",
        f"AWS credentials work: {named}account {ident.account}, region {region}.",
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
