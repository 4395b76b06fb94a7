"""Cost before launch: the estimate line under the job form, and the confirm dialog before a
SageMaker job starts.

Both show the price `core.aws.pricing` has: the AWS Price List's (read on the thread pool
through the user's session, cached with its date) or the dated table that ships with the app.
Which region a spec would run in can take boto3's config lookup (its first import is slow), so
`CostLabel` resolves it on the thread pool, once per (profile, region in the spec), and then
computes the estimate on the GUI thread (a dictionary look-up). The main window resolves the
job's region on a worker before it calls `confirm_cloud_run`.
"""

from __future__ import annotations

import html
import logging
import re

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

from trainer_gui.core.aws.pricing import (
    FALLBACK_REGION,
    CostEstimate,
    estimate_cost,
    forget_failures,
    money,
    pricing_region,
    refresh_list_price,
    runtime_text,
)
from trainer_gui.core.spec.model import Backend, JobSpec
from trainer_gui.ui.tasks import TaskGroup

log = logging.getLogger(__name__)

WARNING_COLOR = "#c77c02"
_PER_HOUR_RE = re.compile(r"(\$[0-9.,]+/h)")

RegionKey = tuple[str | None, str | None]


def _region_key(spec: JobSpec) -> RegionKey:
    return spec.sagemaker.profile, spec.sagemaker.region


def cost_tooltip(estimate: CostEstimate) -> str:
    """Where the figures come from (rich text, so the tooltip wraps)."""
    source = f" Source: {html.escape(estimate.source)}" if estimate.source else ""
    if estimate.from_api:
        origin = "the AWS Price List (read with your AWS credentials), published"
    elif estimate.approximate:
        origin = "the price table that ships with the app (an approximate figure), dated"
    else:
        origin = "the price table that ships with the app, dated"
    return (
        f"<p>A list-price estimate from {origin} "
        f"<b>{html.escape(estimate.as_of)}</b>, for {html.escape(estimate.region)} "
        f"({html.escape(estimate.currency)} per instance-hour x instance count; On-Demand, no "
        "Spot or Savings Plans; storage, data transfer and S3 are extra). The bill can differ: "
        f"check the SageMaker pricing page.{source}</p>"
    )


def cost_html(estimate: CostEstimate) -> str:
    """`estimate.summary()` as rich text with the per-hour figure in bold."""
    return _PER_HOUR_RE.sub(r"<b>\1</b>", html.escape(estimate.summary()), count=1)


class CostLabel(QLabel):
    """The estimated cost of a SageMaker job (per hour and for its max runtime); hidden for the
    local backends. `set_spec` after each validation; `refresh_settings` after the AWS settings
    change (the region a spec without one uses may change with them)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.spec: JobSpec | None = None
        self.estimate: CostEstimate | None = None
        """The estimate shown now (None while hidden or while the region is resolved)."""
        self._regions: dict[RegionKey, str] = {}
        self._pending: set[RegionKey] = set()
        self._tasks = TaskGroup(self)
        self._asked: set[tuple[str | None, str, str]] = set()
        self.hide()

    def set_spec(self, spec: JobSpec | None) -> None:
        self.spec = spec
        if spec is None or spec.compute.backend != Backend.SAGEMAKER:
            self.estimate = None
            self.hide()
            return
        region = self.region_for(spec)
        if region is None:
            self.estimate = None
            self._show("Estimating the cost…", "", "")
            self._resolve(spec)
            return
        self._render(estimate_cost(spec, region))
        self._ask_aws(spec, region)

    def region_for(self, spec: JobSpec) -> str | None:
        """The region the estimate uses, if known without blocking (the spec's own, or cached)."""
        if spec.sagemaker.region:
            return spec.sagemaker.region
        return self._regions.get(_region_key(spec))

    def refresh_settings(self) -> None:
        """Forget the resolved regions (the AWS settings changed) and estimate again."""
        self._tasks.cancel_all()  # answers for the old settings
        self._regions.clear()
        self._pending.clear()
        self._asked.clear()
        forget_failures()
        self.set_spec(self.spec)

    def is_pending(self) -> bool:
        """Whether a region is being resolved on the thread pool."""
        return bool(self._pending)

    # -- internals ---------------------------------------------------------------------------

    def _resolve(self, spec: JobSpec) -> None:
        key = _region_key(spec)
        if key in self._pending:
            return
        self._pending.add(key)

        def work() -> tuple[RegionKey, str]:
            # Never an error for the user: a region that cannot be found reads as the fallback.
            try:
                return key, pricing_region(spec)
            except Exception:
                log.debug("no pricing region for %s; using %s", key, FALLBACK_REGION, exc_info=True)
                return key, FALLBACK_REGION

        # The group is this label's child: the result is dropped if the label is gone first.
        self._tasks.run(work, self._on_resolved)

    @Slot(object)
    def _on_resolved(self, result: tuple[RegionKey, str]) -> None:
        key, region = result
        self._pending.discard(key)
        self._regions[key] = region
        if self.spec is not None and _region_key(self.spec) == key:
            self.set_spec(self.spec)

    def _ask_aws(self, spec: JobSpec, region: str) -> None:
        """Read the prices from the AWS Price List on the thread pool, once per (profile,
        region, instance type); the estimate is shown again when they arrive."""
        compute = spec.compute
        types = [g.instance_type for g in compute.instance_groups] or [compute.instance_type]
        wanted = [(spec.sagemaker.profile, region, t) for t in types]
        wanted = [key for key in wanted if key not in self._asked]
        if not wanted:
            return
        self._asked.update(wanted)

        def work() -> bool:
            return any([refresh_list_price(t, r, p) for p, r, t in wanted])

        self._tasks.run(work, self._on_prices)

    @Slot(object)
    def _on_prices(self, changed: bool) -> None:
        if changed and self.spec is not None:
            self.set_spec(self.spec)

    def _render(self, estimate: CostEstimate) -> None:
        self.estimate = estimate
        color = "" if estimate.known else f"color: {WARNING_COLOR};"
        self._show(cost_html(estimate), color, cost_tooltip(estimate))

    def _show(self, text: str, style: str, tooltip: str) -> None:
        self.setText(text)
        self.setStyleSheet(style)
        self.setToolTip(tooltip)
        self.show()


# -- the confirm dialog ------------------------------------------------------------------------


def _unpriced(estimate: CostEstimate) -> str:
    """The instance types the price table has no price for (a group's, or the one type)."""
    parts = estimate.groups or (estimate,)
    return ", ".join(dict.fromkeys(p.instance_type for p in parts if not p.known))


def cloud_run_message(spec: JobSpec, region: str | None = None) -> tuple[str, str]:
    """(title, text) of the confirm dialog. Pass the region resolved off the GUI thread; without
    one it is resolved here (may import boto3)."""
    estimate = estimate_cost(spec, region)
    hosts = estimate.hosts
    runtime = runtime_text(estimate.max_runtime_seconds)
    if estimate.per_hour is not None and estimate.for_max_runtime is not None:
        cost = (
            f"Estimated cost: about {money(estimate.per_hour)} per hour, at most "
            f"{money(estimate.for_max_runtime)} for the max runtime of {runtime}\n"
            f"({'AWS Price List, ' if estimate.from_api else ''}list prices of "
            f"{estimate.as_of}{', approximate' if estimate.approximate else ''} for "
            f"{estimate.region}, {estimate.currency}; storage, data transfer and S3 extra)"
        )
    else:
        cost = (
            f"Estimated cost: unknown, no price for {_unpriced(estimate)} in "
            f"{estimate.region} in the price table (list prices of {estimate.as_of}); see the "
            f"SageMaker pricing page. Max runtime: {runtime}."
        )
    title = f"Run {spec.name} on SageMaker?"
    text = "\n".join(
        [
            title,
            "",
            f"Instances: {hosts}",
            f"Region: {estimate.region}",
            cost,
            "",
            "The job runs in your AWS account: it keeps running, and billing, when you close "
            "this app, until it ends, reaches its max runtime or is stopped.",
        ]
    )
    return title, text


class CloudRunBox(QMessageBox):
    """The confirm dialog; `run_button` is its "Run on SageMaker" button (the default)."""

    def __init__(self, parent: QWidget | None, spec: JobSpec, region: str | None = None) -> None:
        super().__init__(parent)
        title, text = cloud_run_message(spec, region)
        self.setIcon(QMessageBox.Icon.Question)
        self.setWindowTitle(title)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setText(text)
        self.run_button = self.addButton("Run on SageMaker", QMessageBox.ButtonRole.AcceptRole)
        self.cancel_button = self.addButton(QMessageBox.StandardButton.Cancel)
        self.setDefaultButton(self.run_button)
        self.setEscapeButton(self.cancel_button)

    def confirmed(self) -> bool:
        return self.clickedButton() is self.run_button


def confirm_cloud_run(parent: QWidget | None, spec: JobSpec, region: str | None = None) -> bool:
    """Ask before a SageMaker job starts (it costs money and outlives the app). True: run it."""
    box = CloudRunBox(parent, spec, region)
    box.exec()
    return box.confirmed()


__all__ = [
    "CloudRunBox",
    "CostLabel",
    "cloud_run_message",
    "confirm_cloud_run",
    "cost_html",
    "cost_tooltip",
]
