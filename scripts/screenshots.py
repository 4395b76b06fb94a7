"""Take the README screenshots: the main window, the job form, a running job and Predict.

    python scripts/screenshots.py                 # writes docs/screenshots/*.png
    python scripts/screenshots.py --out /tmp/shots --theme dark

Runs the real app on a virtual X display (Xvfb, 1366x768, the smallest screen the window is
designed for) with a throwaway data folder, creates a project from the bundled quickstart
example, and trains it on the host-process backend, so the pictures show real logs and curves.

Needs Xvfb and Qt's xcb libraries, e.g. on Debian/Ubuntu:
    apt-get install -y xvfb libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 \
        libxcb-shape0 libxcb-render-util0 libxcb-image0 libegl1 libgl1 fonts-dejavu-core
With a display already available (DISPLAY set) it uses that one, unless --xvfb is given.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "src" / "trainer_gui" / "resources" / "examples" / "quickstart"
SCREEN = (1366, 768)


def start_xvfb() -> subprocess.Popen[bytes]:
    """Start Xvfb on a free display number and point DISPLAY at it."""
    if not shutil.which("Xvfb"):
        raise SystemExit("Xvfb is not installed (apt-get install -y xvfb), or run with a DISPLAY")
    for number in range(99, 140):
        if Path(f"/tmp/.X{number}-lock").exists():
            continue
        proc = subprocess.Popen(
            [
                "Xvfb",
                f":{number}",
                "-screen",
                "0",
                f"{SCREEN[0]}x{SCREEN[1]}x24",
                "-nolisten",
                "tcp",
                "-dpi",
                "96",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(50):
            if Path(f"/tmp/.X11-unix/X{number}").exists():
                os.environ["DISPLAY"] = f":{number}"
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.kill()
    raise SystemExit("could not start Xvfb on any display :99-:139")


def wait_until(app: Any, condition: Callable[[], bool], timeout: float, what: str) -> None:
    from PySide6.QtCore import QEventLoop

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.02)


def settle(app: Any, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def save(widget: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not widget.grab().save(str(path)):
        raise SystemExit(f"cannot write {path}")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def run(out: Path, theme: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="trainer-gui-shots-"))
    os.environ["TRAINER_GUI_HOME"] = str(home / "data")
    os.environ["TRAINER_GUI_THEME"] = theme
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    # The AWS settings page lists profiles: show an example config, never the user's own, and
    # never ask an instance-metadata endpoint for credentials.
    aws_config = home / "aws-config"
    aws_config.write_text(
        "[default]\nregion = us-east-1\n\n[profile research]\nregion = eu-west-1\n"
    )
    os.environ["AWS_CONFIG_FILE"] = str(aws_config)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "aws-credentials")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

    from PySide6.QtWidgets import QApplication

    app = QApplication([sys.argv[0]])
    from trainer_gui.core.runners.events import JobStatus
    from trainer_gui.core.store import Store
    from trainer_gui.services.job_host import make_job_service
    from trainer_gui.ui.app import setup_application
    from trainer_gui.ui.main_window import MainWindow

    setup_application(app)
    project_dir = home / "projects" / "spirals"
    project_dir.mkdir(parents=True)
    for sub in ("code", "data"):
        shutil.copytree(
            EXAMPLE / sub, project_dir / sub, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(EXAMPLE / "job.yaml", project_dir / "quickstart.yaml")

    store = Store()
    service = make_job_service(store)  # as the app does: jobs followed by the job host
    window = MainWindow(store, service)
    window.move(0, 0)
    window.resize(*SCREEN)
    window.show()
    project = window.projects.open_folder(project_dir)
    window.projects.create_project(home / "projects" / "mnist-sweeps", "mnist-sweeps")
    window.projects.select_project(project.id)
    settle(app, 1.0)

    def run_spec(data: dict[str, Any]) -> str:
        before = set(window.jobs.model.job_ids())
        editor = window.open_editor(project_dir, data=data)
        editor.confirm_overwrite = lambda path: True  # type: ignore[method-assign]
        settle(app, 0.3)
        if not editor.run():
            raise SystemExit(f"the form refused to run: {editor.form.problems}")
        wait_until(
            app, lambda: bool(set(window.jobs.model.job_ids()) - before), 60, "the job to be listed"
        )
        return next(iter(set(window.jobs.model.job_ids()) - before))

    def finished(job_id: str) -> bool:
        record = window.jobs.model.record_by_id(job_id)
        return record is not None and record.is_terminal

    import yaml

    base = yaml.safe_load((EXAMPLE / "job.yaml").read_text())

    # 1. the job form, as it opens on the example spec
    form_data = dict(base, name="spirals-wide", hyperparameters={**base["hyperparameters"]})
    form_data["hyperparameters"].update(hidden=64, lr=0.005)
    editor = window.open_editor(project_dir, data=form_data)
    editor.move(120, 40)
    editor.resize(900, 680)
    tabs = editor.form.tabs
    tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index("Data"))
    settle(app, 1.0)
    save(editor, out / "job-form.png")
    editor.close()

    # 2. two finished runs to compare
    first = run_spec(dict(base))
    wait_until(app, lambda: finished(first), 180, "the first job to finish")
    second = run_spec(form_data)
    wait_until(app, lambda: finished(second), 180, "the second job to finish")

    # 3. a running job: a longer run, caught mid-way
    long_data = dict(base, name="spirals-long", hyperparameters={**base["hyperparameters"]})
    long_data["hyperparameters"].update(epochs=60, lr=0.003)
    third = run_spec(long_data)
    window.jobs.select_job(third)
    # 3a. what the run is doing before its first line: the phase line under the header
    wait_until(
        app,
        lambda: window.detail.phase_line.isVisible() or finished(third),
        60,
        "the phase line to show",
    )
    settle(app, 0.8)
    save(window, out / "phase-line.png")
    wait_until(
        app,
        lambda: len(window.detail.log_view.shown_text().splitlines()) > 35 or finished(third),
        180,
        "the long job to be well under way",
    )
    settle(app, 1.5)
    save(window, out / "running-job.png")
    wait_until(app, lambda: finished(third), 300, "the long job to finish")

    # 4. the main window: all runs listed, the finished ones compared
    window.jobs.select_job(first)
    settle(app, 0.5)
    from PySide6.QtCore import QItemSelectionModel

    selection = window.jobs.table.selectionModel()
    for job_id in (second,):
        row = window.jobs.model.row_of(job_id)
        if row is not None:
            index = window.jobs.proxy.mapFromSource(window.jobs.model.index(row, 0))
            selection.select(
                index,
                QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
            )
    settle(app, 2.0)
    save(window, out / "main-window.png")

    # 4a. the hover read-out: a real mouse move over the first plot of the compared runs
    hover_shot(app, window, out)

    # 4c. File > New from template: the gallery
    gallery_shot(app, window, home, out)

    # 4b. the Predict dock: the first run's model answering three rows, as class bars
    predict_shot(app, window, first, out)

    # 4d. the Queue dock: local runs waiting while another uses the machine
    queue_shot(app, window, out)

    # 5. the SageMaker side, as far as it shows without an AWS account: the form with the cost
    # line, the confirm box, the export and the AWS settings page
    cloud_shots(app, window, project_dir, base, out)

    statuses = [window.jobs.status_text(j) for j in (first, second, third)]
    window.close()  # lets the job host go
    settle(app, 0.5)
    store.close()
    shutil.rmtree(home, ignore_errors=True)
    if any(s != JobStatus.COMPLETED.value for s in statuses):
        raise SystemExit(f"a job did not complete: {statuses}")


def hover_shot(app: Any, window: Any, out: Path) -> None:
    """Move the mouse over the middle of the first metric's plot, as a person would."""
    from PySide6.QtCore import QPointF
    from PySide6.QtTest import QTest

    panel = window.detail.metrics
    names = [n for n in panel.metric_names if not n.startswith("sys/")]
    if not names:
        raise SystemExit("no metric plot to hover")
    plot = panel.plot(names[0])
    view = panel.plot_widget(names[0])
    (x0, x1), (y0, y1) = plot.item.vb.viewRange()
    scene = plot.item.vb.mapViewToScene(QPointF(x0 + (x1 - x0) * 0.6, y0 + (y1 - y0) * 0.5))
    QTest.mouseMove(view.viewport(), view.mapFromScene(scene))
    settle(app, 1.0)
    save(window, out / "hover.png")


def gallery_shot(app: Any, window: Any, home: Path, out: Path) -> None:
    from trainer_gui.ui.template_gallery import TemplateGalleryDialog

    gallery = TemplateGalleryDialog(window, location=home / "projects")
    gallery.move(140, 60)
    gallery.show()
    settle(app, 1.0)
    save(gallery, out / "template-gallery.png")
    gallery.close()


def queue_shot(app: Any, window: Any, out: Path) -> None:
    """Three sleepers on a one-at-a-time machine: one runs, two wait in the Queue dock."""
    from PySide6.QtCore import Qt

    from trainer_gui.core.spec import spec_from_dict

    control = window.queue.control
    control.set_max_parallel(1)
    project = window.current_project()
    ids = []
    for lr in ("1e-2", "3e-3", "1e-3"):
        command = [sys.executable, "-c", "import time; time.sleep(120)"]
        spec = spec_from_dict({"name": f"sweep-lr-{lr}", "source": {"command": command}})
        ids.append(window.service.submit(spec, project.id if project else None).job_id)
    window.queue_dock.show()
    window.resizeDocks([window.queue_dock], [440], Qt.Orientation.Horizontal)
    try:
        wait_until(
            app,
            lambda: window.queue.snapshot is not None and len(window.queue.snapshot.waiting) == 2,
            60,
            "two queued jobs",
        )
        window.queue.select_job(ids[-1])
        wait_until(app, lambda: window.jobs.select_job(ids[-1]), 30, "the queued job listed")
        settle(app, 1.5)
        save(window, out / "queue.png")
    finally:
        for job_id in ids:
            window.service.stop(job_id, wait=15)
        control.set_max_parallel(None)
        window.queue_dock.hide()


def predict_shot(app: Any, window: Any, job_id: str, out: Path) -> None:
    """Serve a finished run's model (the serving runtime in a thread: no Docker needed), send
    three rows of the example's test data from the Predict dock and take the window."""
    import json
    import tarfile
    import threading

    from trainer_gui.core.serving.runtime import ModelService, make_server

    panel = window.detail.metrics  # the mouse has left the plots: no read-out in this picture
    for name in panel.metric_names:
        panel.plot(name).hide_hover()
    record = window.jobs.model.record_by_id(job_id)
    archive = next(Path(record.run_dir).rglob("model.tar.gz"), None) if record else None
    if archive is None:
        raise SystemExit(f"no model.tar.gz in the run folder of {job_id}")
    model_dir = Path(tempfile.mkdtemp(prefix="trainer-gui-shots-model-"))
    with tarfile.open(archive) as tar:
        tar.extractall(model_dir, filter="data")
    service = ModelService(model_dir=str(model_dir))
    server = make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        service.load()
        lines = (EXAMPLE / "data" / "test").glob("*.csv")
        rows = [line.split(",")[:4] for line in next(lines).read_text().splitlines()[1:4]]
        panel = window.predict
        window.predict_dock.show()
        panel.select_url(f"http://127.0.0.1:{server.server_address[1]}")
        panel.set_request(json.dumps([[float(v) for v in row] for row in rows]))
        panel.send()
        wait_until(app, lambda: bool(panel.history()) and not panel.busy, 60, "the prediction")
        if panel.class_bars.readout is None:
            raise SystemExit(f"the answer is not class probabilities: {panel.history()[-1]}")
        settle(app, 1.0)
        save(window, out / "predict.png")
        window.predict_dock.hide()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        shutil.rmtree(model_dir, ignore_errors=True)


def cloud_shots(app: Any, window: Any, project_dir: Path, base: dict[str, Any], out: Path) -> None:
    from trainer_gui.ui.form.cost import CloudRunBox

    data = dict(base, name="spirals-cloud")
    data["compute"] = {"backend": "sagemaker", "instance_type": "ml.g5.xlarge", "instance_count": 2}
    data["sagemaker"] = {
        "region": "us-east-1",
        "role_arn": "arn:aws:iam::123456789012:role/SageMakerExecution",
        "s3_prefix": "s3://my-team-bucket/trainer",
    }
    editor = window.open_editor(project_dir, data=data)
    editor.move(120, 40)
    editor.resize(900, 680)
    tabs = editor.form.tabs
    tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index("Compute"))
    wait_until(app, lambda: "$" in editor.cost_label.text(), 30, "the cost estimate")
    settle(app, 0.5)
    save(editor, out / "job-form-sagemaker.png")
    spec = editor.form.spec
    editor.close()

    queued = dict(data, name="spirals-queued")
    queued["sagemaker"] = dict(
        data["sagemaker"],
        batch_queue="gpu-training-queue",
        batch_priority=10,
        batch_retry_attempts=3,
        batch_retry_rules=[
            {"action": "RETRY", "on_status_reason": "Capacity*"},
            {"action": "EXIT", "on_status_reason": "*"},
        ],
    )
    editor = window.open_editor(project_dir, data=queued)
    editor.move(120, 40)
    editor.resize(900, 680)
    tabs = editor.form.tabs
    tabs.setCurrentIndex([tabs.tabText(i) for i in range(tabs.count())].index("SageMaker"))
    settle(app, 0.3)
    from PySide6.QtWidgets import QScrollArea

    page = tabs.currentWidget()
    scroll = page if isinstance(page, QScrollArea) else page.findChild(QScrollArea)
    if scroll is not None:  # the Batch settings are at the end of the tab
        bar = scroll.verticalScrollBar()
        bar.setValue(bar.maximum())
    settle(app, 0.5)
    save(editor, out / "job-form-batch-queue.png")
    editor.close()
    if spec is None:
        raise SystemExit("the SageMaker spec does not validate")

    box = CloudRunBox(window, spec, "us-east-1")
    box.show()
    settle(app, 0.5)
    save(box, out / "confirm-sagemaker.png")
    box.close()

    export = window.open_export(spec)
    export.resize(900, 600)
    wait_until(app, lambda: bool(export.ready), 60, "the export")
    settle(app, 0.5)
    save(export, out / "export-sagemaker.png")
    export.close()

    settings = window.show_aws_settings()
    settle(app, 2.0)
    save(settings, out / "aws-settings.png")
    settings.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--theme", choices=("light", "dark"), default="light")
    parser.add_argument("--xvfb", action="store_true", help="use Xvfb even if DISPLAY is set")
    args = parser.parse_args()
    xvfb = start_xvfb() if args.xvfb or not os.environ.get("DISPLAY") else None
    try:
        run(args.out.resolve(), args.theme)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
