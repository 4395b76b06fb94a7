"""Behaviour of the embedded store: schema versions, projects, jobs, offsets and metric samples."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer_gui.core.errors import JobNotFound, UserError
from trainer_gui.core.metrics.types import MetricSample
from trainer_gui.core.runners.events import JobStatus
from trainer_gui.core.store import (
    DB_FILENAME,
    MIGRATIONS,
    SCHEMA_VERSION,
    DuplicateJob,
    NewerSchemaError,
    ProjectNotFound,
    StatusEntry,
    Store,
    migrate,
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path)
    yield s
    s.close()


def _raw(path: Path) -> sqlite3.Connection:
    """A plain connection, to look at the file the way another program would."""
    return sqlite3.connect(str(path), isolation_level=None)


def _count(path: Path, table: str) -> int:
    conn = _raw(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def _sample(
    name: str = "loss", value: float = 1.0, host: str = "algo-1", step: int = 0
) -> MetricSample:
    return MetricSample(name=name, value=value, host=host, wall_time=1000.0 + step, step=step)


def _job(
    store: Store, job_id: str = "job-1", name: str = "mnist", project_id: int | None = None
) -> str:
    store.create_job(
        job_id, name, "local", "entry_point: train.py\n", f"/runs/{job_id}", project_id
    )
    return job_id


# ---------------------------------------------------------------- file, schema and migrations


def test_new_database_is_created_at_newest_schema_version(db_path: Path) -> None:
    with Store(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION == MIGRATIONS[-1].version
    conn = _raw(db_path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert {"projects", "jobs", "job_status", "log_offsets", "metric_samples"} <= tables


def test_migration_steps_are_numbered_one_to_n() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert SCHEMA_VERSION >= 2  # the mechanism is exercised by a real second step


def test_database_is_in_wal_mode(store: Store, db_path: Path) -> None:
    conn = _raw(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    conn.close()


def test_old_v1_database_is_migrated_and_keeps_its_data(db_path: Path) -> None:
    conn = _raw(db_path)
    assert migrate(conn, target=1) == 1
    conn.execute(
        "INSERT INTO projects (name, path, settings, created_at) VALUES ('p', '/p', '{}', 1.0)"
    )
    conn.execute(
        "INSERT INTO jobs (id, project_id, name, backend, spec_yaml, status, created_at, "
        "backend_ids, run_dir) VALUES ('old-job', 1, 'old', 'docker', 'x: 1', 'Completed', "
        "2.0, '{\"pid\": 7}', '/runs/old')"
    )
    conn.close()

    with Store(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        job = store.get_job("old-job")
        assert job is not None and job.backend_ids == {"pid": 7} and job.project_id == 1
        assert store.list_jobs(project_id=1) == [job]

    conn = _raw(db_path)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert "jobs_project_created" in indexes  # the v2 step ran


def test_reopening_a_current_database_does_not_rerun_migrations(db_path: Path) -> None:
    Store(db_path).close()
    with Store(db_path) as store:  # a rerun of step 1 would fail with "table already exists"
        assert store.schema_version == SCHEMA_VERSION


def test_database_from_newer_app_is_refused_and_left_untouched(db_path: Path) -> None:
    conn = _raw(db_path)
    conn.execute("CREATE TABLE future (x)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = db_path.read_bytes()

    with pytest.raises(NewerSchemaError) as info:
        Store(db_path)

    assert isinstance(info.value, UserError)
    message = str(info.value)
    assert "newer version of trainer-gui" in message
    assert f"v{SCHEMA_VERSION + 1}" in message and str(db_path) in message
    assert db_path.read_bytes() == before
    assert not Path(str(db_path) + "-wal").exists()


def test_migrate_refuses_newer_database_too(db_path: Path) -> None:
    conn = _raw(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(NewerSchemaError):
        migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 5
    conn.close()


def test_file_that_is_not_a_database_gives_user_error(db_path: Path) -> None:
    db_path.write_bytes(b"this is a text file, not SQLite" * 100)
    with pytest.raises(UserError, match="cannot be used"):
        Store(db_path)


def test_default_location_honours_trainer_gui_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "nested" / "home"
    monkeypatch.setenv("TRAINER_GUI_HOME", str(home))
    with Store() as store:
        assert store.path == home / DB_FILENAME
        store.add_project("p", "/p")
    assert (home / "trainer-gui.sqlite3").is_file()


def test_store_creates_missing_parent_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "db.sqlite3"
    with Store(path):
        pass
    assert path.is_file()


def test_close_is_idempotent_and_store_is_unusable_after(db_path: Path) -> None:
    store = Store(db_path)
    store.close()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.list_projects()


# ---------------------------------------------------------------- projects


def test_project_add_get_and_lookup_by_path(store: Store) -> None:
    p = store.add_project("Vision", "/work/vision", {"default_backend": "docker"})
    assert p.name == "Vision" and p.settings == {"default_backend": "docker"}
    assert p.last_opened_at is None and p.created_at > 0
    assert store.get_project(p.id) == p
    assert store.project_by_path("/work/vision") == p
    assert store.get_project(p.id + 100) is None
    assert store.project_by_path("/nowhere") is None


def test_adding_an_existing_path_returns_the_existing_project(store: Store) -> None:
    first = store.add_project("One", "/work/proj")
    again = store.add_project("Two", "/work/proj/", {"x": 1})  # same folder, trailing slash
    assert again == first
    assert [p.name for p in store.list_projects()] == ["One"]


def test_projects_listed_most_recently_opened_first(store: Store) -> None:
    a = store.add_project("a", "/a")
    b = store.add_project("b", "/b")
    store.add_project("c", "/c")
    assert [p.name for p in store.list_projects()] == ["c", "b", "a"]  # never opened: newest
    store.touch_project(a.id)
    assert [p.name for p in store.list_projects()] == ["a", "c", "b"]
    store.touch_project(b.id)
    store.touch_project(a.id)  # even within one clock tick, the last touch wins
    assert [p.name for p in store.list_projects()] == ["a", "b", "c"]
    touched = store.get_project(a.id)
    assert touched is not None and touched.last_opened_at is not None


def test_rename_and_update_settings(store: Store) -> None:
    p = store.add_project("old", "/p", {"a": 1})
    store.rename_project(p.id, "new")
    store.update_project_settings(p.id, {"b": [1, 2]})
    got = store.get_project(p.id)
    assert got is not None and got.name == "new" and got.settings == {"b": [1, 2]}


def test_changing_a_missing_project_raises_project_not_found(store: Store) -> None:
    with pytest.raises(ProjectNotFound):
        store.rename_project(42, "x")
    with pytest.raises(ProjectNotFound):
        store.touch_project(42)
    with pytest.raises(ProjectNotFound):
        store.update_project_settings(42, {})


def test_removing_a_project_keeps_its_jobs_detached(store: Store) -> None:
    p = store.add_project("p", "/p")
    _job(store, "j1", project_id=p.id)
    store.remove_project(p.id)
    store.remove_project(p.id)  # idempotent
    assert store.list_projects() == []
    job = store.get_job("j1")
    assert job is not None and job.project_id is None


def test_projects_are_hashable_despite_settings_dict(store: Store) -> None:
    p = store.add_project("p", "/p", {"k": "v"})
    assert {p: 1}[p] == 1


# ---------------------------------------------------------------- jobs


def test_new_job_is_pending_with_one_history_entry(store: Store) -> None:
    job = store.create_job("j1", "mnist", "docker", "spec: 1\n", "/runs/j1", created_at=50.0)
    assert job.status == "Pending" and job.created_at == 50.0
    assert job.started_at is None and job.ended_at is None and job.duration is None
    assert store.get_job("j1") == job
    assert store.status_history("j1") == [StatusEntry("Pending", "", 50.0)]


def test_creating_a_duplicate_job_id_fails_without_changes(store: Store) -> None:
    _job(store, "j1", name="first")
    with pytest.raises(DuplicateJob):
        _job(store, "j1", name="second")
    job = store.get_job("j1")
    assert job is not None and job.name == "first"
    assert len(store.status_history("j1")) == 1


def test_job_for_unknown_project_is_refused(store: Store) -> None:
    with pytest.raises(ProjectNotFound):
        _job(store, "j1", project_id=99)
    assert store.get_job("j1") is None


def test_job_lifecycle_records_history_and_timestamps(store: Store) -> None:
    _job(store)
    store.set_status("job-1", "Starting", "pulling image", at=100.0)
    store.set_status("job-1", JobStatus.TRAINING, at=110.0)
    store.set_status("job-1", "Training", "epoch 2", at=150.0)
    store.set_status("job-1", "Uploading", at=190.0)
    store.set_status("job-1", "Completed", at=200.0)

    job = store.get_job("job-1")
    assert job is not None
    assert job.status == "Completed" and job.job_status is JobStatus.COMPLETED
    assert job.is_terminal and not job.is_active
    assert job.started_at == 110.0  # the first Training, not Starting
    assert job.ended_at == 200.0
    assert job.duration == 90.0
    assert job.failure_reason is None
    assert [(e.status, e.message, e.at) for e in store.status_history("job-1")][1:] == [
        ("Starting", "pulling image", 100.0),
        ("Training", "", 110.0),
        ("Training", "epoch 2", 150.0),
        ("Uploading", "", 190.0),
        ("Completed", "", 200.0),
    ]


def test_started_at_falls_back_to_starting_when_never_training(store: Store) -> None:
    _job(store)
    store.set_status("job-1", "Starting", at=10.0)
    store.set_status("job-1", "Failed", "image not found", at=12.0)
    job = store.get_job("job-1")
    assert job is not None and job.started_at == 10.0 and job.duration == 2.0


def test_duration_of_running_job_uses_now(store: Store) -> None:
    _job(store)
    store.set_status("job-1", "Training", at=1.0)
    job = store.get_job("job-1")
    assert job is not None and job.ended_at is None
    assert job.duration is not None and job.duration > 1_000_000  # now - 1.0


def test_terminal_status_is_sticky(store: Store) -> None:
    _job(store)
    store.set_status("job-1", "Training", at=1.0)
    store.set_status("job-1", "Completed", at=2.0)
    store.set_status("job-1", "Training", "late event", at=3.0)
    store.set_status("job-1", "Failed", "late failure", at=4.0)
    job = store.get_job("job-1")
    assert job is not None
    assert job.status == "Completed" and job.ended_at == 2.0 and job.failure_reason is None
    assert [e.status for e in store.status_history("job-1")] == ["Pending", "Training", "Completed"]


def test_failure_reason_is_stored_for_failed_jobs(store: Store) -> None:
    _job(store)
    store.set_status("job-1", "Failed", "CUDA out of memory", at=5.0)
    job = store.get_job("job-1")
    assert job is not None
    assert job.status == "Failed" and job.failure_reason == "CUDA out of memory"
    assert job.ended_at == 5.0 and job.started_at is None and job.duration is None


def test_stopped_keeps_its_message_as_reason_only_when_given(store: Store) -> None:
    _job(store, "a")
    _job(store, "b")
    store.set_status("a", "Stopped", "stopped by user")
    store.set_status("b", "Stopped")
    a, b = store.get_job("a"), store.get_job("b")
    assert a is not None and a.failure_reason == "stopped by user"
    assert b is not None and b.failure_reason is None and b.ended_at is not None


def test_unknown_status_is_rejected(store: Store) -> None:
    _job(store)
    with pytest.raises(ValueError):
        store.set_status("job-1", "Exploded")
    job = store.get_job("job-1")
    assert job is not None and job.status == "Pending"


def test_writing_to_an_unknown_job_raises_job_not_found(store: Store) -> None:
    with pytest.raises(JobNotFound):
        store.set_status("ghost", "Training")
    with pytest.raises(JobNotFound):
        store.update_backend_ids("ghost", {"pid": 1})
    with pytest.raises(JobNotFound):
        store.record_batch("ghost", {("h", "stdout"): "1"}, [_sample()])


def test_get_job_by_id_name_or_unique_prefix(store: Store) -> None:
    store.create_job("abc123", "resnet", "local", "", "/r1", created_at=1.0)
    store.create_job("abd456", "resnet", "local", "", "/r2", created_at=2.0)
    store.create_job("zzz999", "abc123x", "local", "", "/r3", created_at=3.0)

    by_id = store.get_job("abc123")
    assert by_id is not None and by_id.id == "abc123"
    newest_named = store.get_job("resnet")
    assert newest_named is not None and newest_named.id == "abd456"
    by_prefix = store.get_job("abd")
    assert by_prefix is not None and by_prefix.id == "abd456"
    assert store.get_job("ab") is None  # ambiguous prefix
    assert store.get_job("q") is None
    assert store.get_job("") is None


def test_require_job_explains_ambiguous_and_missing_keys(store: Store) -> None:
    _job(store, "abc1")
    _job(store, "abc2")
    with pytest.raises(JobNotFound, match="matches several jobs"):
        store.require_job("abc")
    with pytest.raises(JobNotFound, match="No job"):
        store.require_job("nope")
    assert store.require_job("abc2").id == "abc2"


def test_list_jobs_newest_first_with_filters(store: Store) -> None:
    p = store.add_project("p", "/p")
    store.create_job("old", "a", "local", "", "/r", project_id=p.id, created_at=1.0)
    store.create_job("mid", "b", "local", "", "/r", created_at=2.0)
    store.create_job("new", "c", "local", "", "/r", project_id=p.id, created_at=3.0)
    store.set_status("new", "Completed")

    assert [j.id for j in store.list_jobs()] == ["new", "mid", "old"]
    assert [j.id for j in store.list_jobs(project_id=p.id)] == ["new", "old"]
    assert [j.id for j in store.list_jobs(limit=2)] == ["new", "mid"]
    assert [j.id for j in store.list_jobs(active_only=True)] == ["mid", "old"]
    assert [j.id for j in store.list_jobs(project_id=p.id, active_only=True)] == ["old"]


def test_jobs_created_in_the_same_instant_keep_creation_order(store: Store) -> None:
    for i in range(5):
        store.create_job(f"j{i}", "same", "local", "", "/r", created_at=7.0)
    assert [j.id for j in store.list_jobs()] == ["j4", "j3", "j2", "j1", "j0"]
    newest = store.get_job("same")
    assert newest is not None and newest.id == "j4"


def test_backend_ids_are_merged(store: Store) -> None:
    _job(store)
    store.update_backend_ids("job-1", {"container_id": "c1", "pid": 10})
    store.update_backend_ids("job-1", {"pid": 11, "arn": "arn:aws:sagemaker:x"})
    job = store.get_job("job-1")
    assert job is not None
    assert job.backend_ids == {"container_id": "c1", "pid": 11, "arn": "arn:aws:sagemaker:x"}


# ---------------------------------------------------------------- offsets and metric samples


def test_record_batch_stores_offsets_and_samples(store: Store) -> None:
    _job(store)
    store.record_batch(
        "job-1",
        {("algo-1", "stdout"): "120", ("algo-1", "stderr"): "7"},
        [_sample("loss", 0.9, step=1), _sample("acc", 0.5, step=1)],
    )
    store.record_batch("job-1", {("algo-1", "stdout"): "260"}, [_sample("loss", 0.7, step=2)])

    assert store.get_offsets("job-1") == {("algo-1", "stdout"): "260", ("algo-1", "stderr"): "7"}
    rows = store.metric_samples("job-1")
    assert [s for _, s in rows] == [
        _sample("loss", 0.9, step=1),
        _sample("acc", 0.5, step=1),
        _sample("loss", 0.7, step=2),
    ]
    ids = [i for i, _ in rows]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert store.metric_count("job-1") == 3
    assert store.metric_names("job-1") == ["acc", "loss"]


def test_failed_batch_writes_neither_offsets_nor_samples(store: Store, db_path: Path) -> None:
    _job(store)
    store.record_batch("job-1", {("algo-1", "stdout"): "10"}, [_sample(step=0)])
    good = [_sample(step=i) for i in range(1, 5000)]
    bad = MetricSample(name="loss", value="not a number", host="algo-1", wall_time=1.0)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="must be a number"):
        store.record_batch(
            "job-1",
            {("algo-1", "stdout"): "999", ("algo-2", "stdout"): "5"},
            [*good, bad, *good],
        )

    assert store.get_offsets("job-1") == {("algo-1", "stdout"): "10"}
    assert store.metric_count("job-1") == 1
    assert _count(db_path, "metric_samples") == 1  # seen from outside too
    # The store is still usable afterwards (no transaction left open).
    store.record_batch("job-1", {("algo-1", "stdout"): "20"}, [_sample(step=1)])
    assert store.metric_count("job-1") == 2


def test_batch_with_non_string_offset_is_rejected_whole(store: Store) -> None:
    _job(store)
    with pytest.raises(TypeError):
        store.record_batch("job-1", {("algo-1", "stdout"): 5}, [_sample()])  # type: ignore[dict-item]
    assert store.get_offsets("job-1") == {}
    assert store.metric_count("job-1") == 0


def test_nan_and_numpy_like_values_round_trip(store: Store) -> None:
    class Scalar:
        def __float__(self) -> float:
            return 2.5

    _job(store)
    store.record_batch(
        "job-1",
        {},
        [
            _sample("loss", math.nan, step=1),
            _sample("loss", math.inf, step=2),
            MetricSample("lr", Scalar(), "algo-1", 1.0, step=3, epoch=1),  # type: ignore[arg-type]
        ],
    )
    values = [s.value for _, s in store.metric_samples("job-1")]
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == 2.5
    assert store.metric_samples("job-1", name="lr")[0][1].epoch == 1.0


def test_metric_samples_filters_and_after_id_polling(store: Store) -> None:
    _job(store)
    store.record_batch(
        "job-1",
        {},
        [
            _sample("loss", 1.0, host="algo-1", step=1),
            _sample("loss", 2.0, host="algo-2", step=1),
            _sample("acc", 0.1, host="algo-1", step=1),
        ],
    )
    first = store.metric_samples("job-1", name="loss")
    assert [(s.host, s.value) for _, s in first] == [("algo-1", 1.0), ("algo-2", 2.0)]
    assert [s.value for _, s in store.metric_samples("job-1", host="algo-2")] == [2.0]
    assert [s.value for _, s in store.metric_samples("job-1", name="loss", host="algo-1")] == [1.0]

    last_seen = store.metric_samples("job-1")[-1][0]
    assert store.metric_samples("job-1", after_id=last_seen) == []
    store.record_batch("job-1", {}, [_sample("loss", 3.0, step=2)])
    new = store.metric_samples("job-1", after_id=last_seen)
    assert [s.value for _, s in new] == [3.0] and new[0][0] > last_seen
    assert len(store.metric_samples("job-1", limit=2)) == 2


def test_last_metrics_takes_the_newest_row_of_each_name(store: Store) -> None:
    _job(store)
    _job(store, "other")
    store.record_batch("job-1", {}, [_sample("loss", 1.0, "algo-1", 5), _sample("acc", 0.2)])
    store.record_batch("job-1", {}, [_sample("loss", 0.5, "algo-2", 3)])  # newer row, lower step
    store.record_batch("other", {}, [_sample("loss", 99.0)])
    assert store.last_metrics("job-1") == {"loss": 0.5, "acc": 0.2}
    assert store.last_metrics("missing") == {}
    assert store.metric_count("other") == 1


def test_samples_of_one_job_are_invisible_to_another(store: Store) -> None:
    _job(store, "a")
    _job(store, "b")
    store.record_batch("a", {("h", "stdout"): "1"}, [_sample("x")])
    assert store.metric_samples("b") == [] and store.get_offsets("b") == {}
    assert store.metric_names("b") == [] and store.metric_count("b") == 0


def test_delete_job_cascades_to_history_offsets_and_samples(store: Store, db_path: Path) -> None:
    _job(store, "gone")
    _job(store, "kept")
    for job_id in ("gone", "kept"):
        store.set_status(job_id, "Training")
        store.record_batch(job_id, {("algo-1", "stdout"): "5"}, [_sample(), _sample("acc")])

    store.delete_job("gone")
    store.delete_job("gone")  # idempotent

    assert store.get_job("gone") is None
    assert store.status_history("gone") == [] and store.get_offsets("gone") == {}
    assert store.metric_count("gone") == 0
    assert _count(db_path, "job_status") == 2
    assert _count(db_path, "log_offsets") == 1
    assert _count(db_path, "metric_samples") == 2
    assert store.metric_count("kept") == 2
