"""diffmig as a user runs it: its CLI (``manage.py diffmig …``) in a child process per command.

Each command is timed from outside, with the process's peak RSS, against the bench's own
control database. State between repetitions is restored from PostgreSQL templates:
``stage0`` (mapping imported, destination empty) and ``stage1`` (after the baseline).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.databases import BenchDatabases
from bench.destination import destination_ddl
from bench.measure import Background, Proc, run_process

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "bench" / "clinic.yaml"
FINISHED = ("completed", "failed", "cancelled")


@dataclass
class Diffmig:
    dbs: BenchDatabases
    batch_size: int
    redis_url: str | None = None
    # The tree whose manage.py runs (another checkout measures another commit).
    root: Path = ROOT
    # Settings only the RQ workers' runs get (partitions small enough to share).
    worker_settings: dict[str, str] = field(default_factory=dict)
    # Processes of the command line's runs (DIFFMIG_LOCAL_PROCESSES: partitions shared).
    local_processes: int = 1

    @property
    def manage(self) -> str:
        return str(self.root / "manage.py")

    def env(self, *, workers: bool = False) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE") and not k.startswith("PYTEST")
        }
        env.update(
            DATABASE_URL=self.dbs.pg_url("control"),
            DIFFMIG_BENCH_LEGACY_URL=self.dbs.mysql_url(),
            DIFFMIG_BENCH_TARGET_URL=self.dbs.pg_url("target"),
            PYTHONUNBUFFERED="1",
        )
        # Development settings without Django's DEBUG (DEBUG unset): with DEBUG=1 Django
        # keeps every query's SQL in memory, which costs time and memory users do not pay.
        env.pop("DEBUG", None)
        env["DIFFMIG_LOCAL_PROCESSES"] = str(self.local_processes)
        if workers and self.redis_url:
            env["REDIS_URL"] = self.redis_url
            env.update(self.worker_settings)
        return env

    def cli(self, *args: str, check: bool = True, env: dict | None = None, prefix=()) -> Proc:
        argv = [sys.executable, *prefix, self.manage, "diffmig", *args]
        return run_process(argv, env=env or self.env(), check=check)

    # -- state ----------------------------------------------------------------------------

    def prepare(self, *, fk_indexes: bool = True) -> None:
        """A migrated control database with the mapping imported, an empty destination; saved
        as ``stage0``."""
        self.dbs.fresh_pg("control")
        target = self.dbs.fresh_pg("target")
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            for ddl in destination_ddl(fk_indexes=fk_indexes):
                conn.execute(ddl)
        run_process(
            [sys.executable, self.manage, "migrate", "--noinput", "-v0"], env=self.env(), check=True
        )
        self.cli("mappings", "import", str(MAPPING))
        self.save("stage0")

    def save(self, stage: str) -> None:
        self.dbs.snapshot("control", f"tpl_control_{stage}")
        self.dbs.snapshot("target", f"tpl_target_{stage}")

    def restore(self, stage: str) -> None:
        self.dbs.fresh_pg("control", template=f"tpl_control_{stage}")
        self.dbs.fresh_pg("target", template=f"tpl_target_{stage}")

    # -- runs -----------------------------------------------------------------------------

    def run(self, *, baseline: bool = False, profile_to: str | None = None) -> tuple[Proc, dict]:
        args = ["run", "--json", "--batch-size", str(self.batch_size)]
        if baseline:
            args.append("--baseline")
        prefix = ("-m", "cProfile", "-o", profile_to) if profile_to else ()
        proc = self.cli(*args, check=False, prefix=prefix)
        document = _json(proc)
        status = document.get("session", {}).get("status")
        if proc.returncode != 0 or status != "completed":
            raise RuntimeError(
                f"diffmig run ended {status!r} (exit {proc.returncode}): "
                f"{json.dumps(document.get('session', {}).get('errors'))} {proc.stderr[-1500:]}"
            )
        return proc, document

    def verify(self) -> tuple[Proc, dict]:
        proc = self.cli("verify", "--json", check=False)
        return proc, _json(proc)

    def change_set(self, session_id: str) -> set[tuple[str, str, str]]:
        """(entity, kind, legacy key) of every change the session's analyses found."""
        with self.dbs.pg_connect("control") as conn:
            rows = conn.execute(
                "SELECT a.entity_type, c.kind, c.legacy_key_text "
                "FROM differential_analysis_changes c "
                "JOIN differential_analysis_results a ON a.id = c.analysis_id "
                "JOIN migration_status_tracking s "
                "  ON s.migration_session_id = a.migration_session_id "
                "WHERE s.migration_session_id = %s",
                (session_id,),
            ).fetchall()
        return {(e, k, key) for e, k, key in rows}

    def baseline_on_workers(self, count: int, *, log_dir: Path) -> tuple[float, list[float]]:
        """The baseline run by ``count`` RQ workers, from launch to the session's end; their
        peak RSS."""
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()
        env = self.env(workers=True)
        started = time.perf_counter()
        launched = self.cli(
            "run", "--baseline", "--json", "--batch-size", str(self.batch_size), env=env
        )
        session_id = _json(launched)["session"]["id"]
        workers = [
            Background.start(
                [sys.executable, self.manage, "diffmig", "worker"],
                env=env,
                log_path=str(log_dir / f"worker-{count}-{i}.log"),
            )
            for i in range(count)
        ]
        try:
            status = self._wait_for(session_id)
            seconds = time.perf_counter() - started
        finally:
            rss = [worker.stop() for worker in workers]
        if status != "completed":
            raise RuntimeError(f"baseline on {count} worker(s) ended {status!r}")
        return seconds, rss

    def _wait_for(self, session_id: str) -> str:
        with self.dbs.pg_connect("control", autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT overall_status FROM migration_status_tracking "
                    "WHERE migration_session_id = %s",
                    (session_id,),
                ).fetchone()
                if row and row[0] in FINISHED:
                    return row[0]
                time.sleep(0.2)


def _json(proc: Proc) -> dict:
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as error:
        raise RuntimeError(
            f"diffmig printed no JSON (exit {proc.returncode}): {proc.stderr[-1500:]}"
        ) from error
