"""reladiff's find-only run on one table, executed by the bench-only venv's Python.

    var/bench-venv/bin/python bench/reladiff_find.py MYSQL_URL PG_URL TABLE KEY COLUMNS…

Prints one JSON line: the seconds of finding every difference (hash-diff over both sides,
nothing applied), the rows that differ on each side, and reladiff's version.

The charset fix: reladiff 0.6.0 (through sqeleton) opens MySQL connections with
``charset="utf8"``, which on MariaDB is utf8mb3. Every value it reads or casts for its
checksums then passes through a 3-byte charset, so 4-byte text (emoji in a utf8mb4 column)
comes back as ``?``: the checksums of both sides disagree on every segment that holds one,
and reladiff reports those rows as different although nothing changed. Opening the
connection as utf8mb4 (with MariaDB's ``utf8mb4_general_ci``: mysql-connector's default
utf8mb4 collation is MySQL 8's ``utf8mb4_0900_ai_ci``, unknown to MariaDB) fixes it.
This file needs nothing of diffmig: it runs outside its virtualenv.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version


def apply_charset_fix() -> None:
    import mysql.connector
    from sqeleton.databases import mysql as sqeleton_mysql

    def create_connection(self):
        return mysql.connector.connect(
            charset="utf8mb4", collation="utf8mb4_general_ci", use_unicode=True, **self._args
        )

    sqeleton_mysql.MySQL.create_connection = create_connection


def main(argv: list[str]) -> int:
    fix = "--no-charset-fix" not in argv
    args = [a for a in argv if not a.startswith("--")]
    mysql_url, pg_url, table, key, *columns = args
    if fix:
        apply_charset_fix()
    import reladiff

    started = time.perf_counter()
    left = reladiff.connect_to_table(mysql_url, table, key, thread_count=1)
    right = reladiff.connect_to_table(pg_url, table, key, thread_count=1)
    minus = plus = 0
    keys = set()
    # skip_sort_results: sorting the differing rows compares whole rows, and a NULL next to a
    # text in a changed row stops 0.6.0 with a TypeError; the order does not matter here.
    differences = reladiff.diff_tables(
        left, right, extra_columns=tuple(columns), skip_sort_results=True
    )
    for sign, row in differences:
        keys.add(row[0])
        if sign == "-":
            minus += 1
        else:
            plus += 1
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "minus": minus,
                "plus": plus,
                "keys": len(keys),
                "reladiff": version("reladiff"),
                "mysql_connector": version("mysql-connector-python"),
                "charset_fix": fix,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
