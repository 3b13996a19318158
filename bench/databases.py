"""The bench's databases: their names, fresh creation, and snapshots by PostgreSQL templates.

Every database the bench makes starts with one prefix (``diffmig_bench`` by default; the
smoke test passes a scratch ``diffmig_t_…`` one), so that ``drop_all`` can remove exactly
what one bench run created. PostgreSQL states are saved and restored with
``CREATE DATABASE … TEMPLATE …``, which copies a database file by file: a repeated run starts
from the same control and destination state in a second or two.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import psycopg
import pymysql

_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")


@dataclass(frozen=True)
class Servers:
    mysql_host: str = "127.0.0.1"
    mysql_port: int = 3306
    mysql_user: str = "root"
    mysql_password: str = ""
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"

    @classmethod
    def from_env(cls) -> Servers:
        return cls(
            mysql_host=os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1"),
            mysql_port=int(os.environ.get("BENCH_MYSQL_PORT", "3306")),
            mysql_user=os.environ.get("BENCH_MYSQL_USER", "root"),
            mysql_password=os.environ.get("BENCH_MYSQL_PASSWORD", ""),
            pg_host=os.environ.get("BENCH_PG_HOST", "127.0.0.1"),
            pg_port=int(os.environ.get("BENCH_PG_PORT", "5432")),
            pg_user=os.environ.get("BENCH_PG_USER", "postgres"),
        )


@dataclass(frozen=True)
class BenchDatabases:
    """Names of everything one bench run creates, and how to reach it."""

    prefix: str
    servers: Servers

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.prefix):
            raise ValueError(f"bench prefix {self.prefix!r}: lower-case letters, digits and _")

    # MariaDB: the legacy clinic.
    @property
    def legacy(self) -> str:
        return f"{self.prefix}_legacy"

    def pg(self, role: str) -> str:
        """PostgreSQL database names: target, control, raw (raw COPY and reladiff's side),
        pgloader, floor, and the snapshots ``tpl_<what>``."""
        return f"{self.prefix}_{role}"

    def mysql_url(self) -> str:
        s = self.servers
        auth = s.mysql_user + (f":{s.mysql_password}" if s.mysql_password else "")
        return f"mysql://{auth}@{s.mysql_host}:{s.mysql_port}/{self.legacy}"

    def pg_url(self, role: str) -> str:
        s = self.servers
        return f"postgresql://{s.pg_user}@{s.pg_host}:{s.pg_port}/{self.pg(role)}"

    def pg_admin_url(self) -> str:
        s = self.servers
        return f"postgresql://{s.pg_user}@{s.pg_host}:{s.pg_port}/postgres"

    def mysql_connect(self, *, database: bool = True, streaming: bool = False, **kw):
        s = self.servers
        options = dict(
            host=s.mysql_host,
            port=s.mysql_port,
            user=s.mysql_user,
            password=s.mysql_password,
            charset="utf8mb4",
            autocommit=True,
        )
        if database:
            options["database"] = self.legacy
        if streaming:
            options["cursorclass"] = pymysql.cursors.SSCursor
        options.update(kw)
        return pymysql.connect(**options)

    def pg_connect(self, role: str, **kw) -> psycopg.Connection:
        return psycopg.connect(self.pg_url(role), **kw)

    # -- creating, snapshotting, dropping ----------------------------------------------------

    def fresh_pg(self, role: str, *, template: str | None = None) -> str:
        """Drop and create ``role`` (empty, or a copy of the snapshot ``template``)."""
        name = self.pg(role)
        source = f' TEMPLATE "{self.pg(template)}"' if template else " TEMPLATE template0"
        with psycopg.connect(self.pg_admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f"CREATE DATABASE \"{name}\"{source} ENCODING 'UTF8'")
        return self.pg_url(role)

    def snapshot(self, role: str, as_role: str) -> None:
        """Save ``role`` as the template ``as_role`` (nothing may be connected to it)."""
        self.fresh_pg(as_role, template=role)

    def fresh_mysql(self) -> None:
        conn = self.mysql_connect(database=False)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.legacy}`")
            cur.execute(
                f"CREATE DATABASE `{self.legacy}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
            )
        conn.close()

    def drop_all(self) -> list[str]:
        """Drop every database of this prefix (MariaDB and PostgreSQL); returns their names."""
        dropped = []
        pattern = self.prefix.replace("_", r"\_") + r"\_%"
        with psycopg.connect(self.pg_admin_url(), autocommit=True) as admin:
            names = [
                row[0]
                for row in admin.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (pattern,)
                )
            ]
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                dropped.append(name)
        conn = self.mysql_connect(database=False)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.legacy}`")
        conn.close()
        dropped.append(self.legacy)
        return dropped
