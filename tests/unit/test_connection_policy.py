"""The connection policy: placeholders, allowed hosts, the SQLite root, refused options.

Nothing here reaches a server: every refusal happens before a connection is attempted.
"""

from __future__ import annotations

import os
import pathlib
import zoneinfo

import pytest

from migrationsapp.engine.connectors import (
    ConnectionPolicy,
    ConnectionSpec,
    check_url,
    expand_placeholders,
    open_database,
    placeholder_names,
    redact_url,
)
from migrationsapp.engine.errors import ConfigurationError


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "sqlite_root"
    path.mkdir()
    return path


@pytest.fixture
def policy(root: pathlib.Path) -> ConnectionPolicy:
    return ConnectionPolicy(allowed_hosts=("127.0.0.1", "localhost"), sqlite_root=root)


# --- placeholders ---------------------------------------------------------------------


def test_placeholders_expand_diffmig_variables() -> None:
    text = "mysql://app:${DIFFMIG_PW}@${DIFFMIG_HOST}:3306/legacy"
    environ = {"DIFFMIG_PW": "s3cret", "DIFFMIG_HOST": "127.0.0.1"}
    assert expand_placeholders(text, environ) == "mysql://app:s3cret@127.0.0.1:3306/legacy"


def test_placeholder_names_in_order_without_repeats() -> None:
    text = "${DIFFMIG_B}${DIFFMIG_A}${DIFFMIG_B}"
    assert placeholder_names(text) == ["DIFFMIG_B", "DIFFMIG_A"]
    assert placeholder_names("sqlite:///x.db") == []


def test_placeholder_outside_diffmig_names_is_refused() -> None:
    with pytest.raises(ConfigurationError) as refused:
        expand_placeholders("mysql://u:${SECRET_KEY}@127.0.0.1/db", {"SECRET_KEY": "django"})
    assert str(refused.value) == "${SECRET_KEY} is refused: only DIFFMIG_ variables may be used"


def test_placeholder_for_diffmigs_own_keys_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"\$\{DIFFMIG_FERNET_KEYS\} is refused"):
        expand_placeholders("mysql://${DIFFMIG_FERNET_KEYS}@127.0.0.1/db", {})


def test_unset_placeholder_is_refused_naming_it() -> None:
    with pytest.raises(ConfigurationError, match=r"\$\{DIFFMIG_MISSING\} is not set"):
        expand_placeholders("mysql://u:${DIFFMIG_MISSING}@127.0.0.1/db", {})


def test_malformed_and_unterminated_placeholders_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a valid placeholder"):
        expand_placeholders("mysql://${DIFFMIG X}@127.0.0.1/db", {})
    with pytest.raises(ConfigurationError, match="unterminated"):
        expand_placeholders("mysql://${DIFFMIG_X@127.0.0.1/db", {"DIFFMIG_X": "x"})


def test_expanded_values_are_not_expanded_again() -> None:
    environ = {"DIFFMIG_PW": "${SECRET_KEY}", "SECRET_KEY": "django"}
    assert expand_placeholders("${DIFFMIG_PW}", environ) == "${SECRET_KEY}"


# --- hosts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@127.0.0.1:3306/legacy",
        "mariadb://root:pw@localhost/legacy",
        "mysql+pymysql://root@LOCALHOST/legacy",
        "postgresql://postgres@127.0.0.1:5432/app",
        "postgres://postgres@localhost/app",
        "postgresql+psycopg://postgres@127.0.0.1/app",
        "mysql://root@localhost/legacy?unix_socket=/run/mysqld/mysqld.sock",
        "postgresql://postgres@/app?host=/var/run/postgresql",
    ],
)
def test_allowed_urls_pass(url: str, policy: ConnectionPolicy) -> None:
    check_url(url, policy)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("mysql://root@db.example.com:3306/legacy", "db.example.com"),
        ("postgresql://u@10.0.0.5/app", "10.0.0.5"),
        ("mysql://u:p@evil.example@127.0.0.1/db", "evil.example@127.0.0.1"),
        ("postgresql://u@127.0.0.1/app?host=evil.example", "evil.example"),
        ("postgresql://u@127.0.0.1/app?hostaddr=10.1.1.1", "10.1.1.1"),
    ],
)
def test_hosts_outside_the_allowed_list_are_refused(
    url: str, host: str, policy: ConnectionPolicy
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        check_url(url, policy)
    message = str(refused.value)
    assert f"host {host!r}" in message
    assert "DIFFMIG_ALLOWED_DB_HOSTS" in message


def test_unix_socket_is_refused_when_localhost_is_not_allowed(root: pathlib.Path) -> None:
    remote_only = ConnectionPolicy(allowed_hosts=("db.internal",), sqlite_root=root)
    check_url("mysql://u@db.internal/legacy", remote_only)
    with pytest.raises(ConfigurationError, match="DIFFMIG_ALLOWED_DB_HOSTS"):
        check_url("mysql://u@db.internal/legacy?unix_socket=/run/mysqld/mysqld.sock", remote_only)


# --- file-reading options ------------------------------------------------------------


@pytest.mark.parametrize(
    "option",
    [
        "local_infile=1",
        "LOCAL_INFILE=true",
        "read_default_file=/etc/passwd",
        "Read_Default_Group=client",
        "init_command=SELECT 1",
        "passfile=/root/.pgpass",
        "service=prod",
    ],
)
def test_options_that_read_local_files_are_refused_naming_the_option(
    option: str, policy: ConnectionPolicy
) -> None:
    name = option.split("=")[0]
    with pytest.raises(ConfigurationError, match=f"option {name!r}.* is refused"):
        check_url(f"mysql://root@127.0.0.1/legacy?charset=utf8mb4&{option}", policy)


def test_unsupported_scheme_and_driver_are_refused(policy: ConnectionPolicy) -> None:
    with pytest.raises(ConfigurationError, match="scheme 'mssql' is not supported"):
        check_url("mssql://sa@127.0.0.1/legacy", policy)
    with pytest.raises(ConfigurationError, match="driver 'mysqldb' is not supported"):
        check_url("mysql+mysqldb://root@127.0.0.1/legacy", policy)
    with pytest.raises(ConfigurationError, match="not a database URL"):
        check_url("not a url", policy)


def test_unexpanded_placeholder_is_refused(policy: ConnectionPolicy) -> None:
    with pytest.raises(ConfigurationError, match="placeholder"):
        check_url("mysql://root:${DIFFMIG_PW}@127.0.0.1/legacy", policy)


# --- SQLite files -------------------------------------------------------------------------


def test_sqlite_file_under_the_root_passes(root: pathlib.Path, policy: ConnectionPolicy) -> None:
    check_url(f"sqlite:///{root}/legacy.db", policy)
    check_url(f"sqlite:///{root}/sub/dir/legacy.db", policy)


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "{root}/../outside.db",
        "{root}/sub/../../outside.db",
    ],
)
def test_sqlite_file_outside_the_root_is_refused(
    path: str, root: pathlib.Path, policy: ConnectionPolicy
) -> None:
    with pytest.raises(ConfigurationError, match="outside DIFFMIG_SQLITE_ROOT"):
        check_url(f"sqlite:///{path.format(root=root)}", policy)


def test_sqlite_relative_path_resolves_from_the_working_directory(
    root: pathlib.Path, policy: ConnectionPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(root)
    check_url("sqlite:///legacy.db", policy)
    with pytest.raises(ConfigurationError, match="outside DIFFMIG_SQLITE_ROOT"):
        check_url("sqlite:///../legacy.db", policy)


def test_sqlite_symlink_leading_out_of_the_root_is_refused(
    root: pathlib.Path, tmp_path: pathlib.Path, policy: ConnectionPolicy
) -> None:
    outside = tmp_path / "secret.db"
    outside.write_bytes(b"")
    (root / "innocent.db").symlink_to(outside)
    (root / "linked_dir").symlink_to(tmp_path)
    with pytest.raises(ConfigurationError, match="outside DIFFMIG_SQLITE_ROOT"):
        check_url(f"sqlite:///{root}/innocent.db", policy)
    with pytest.raises(ConfigurationError, match="outside DIFFMIG_SQLITE_ROOT"):
        check_url(f"sqlite:///{root}/linked_dir/secret.db", policy)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x.db"])
def test_sqlite_memory_databases_are_refused(url: str, policy: ConnectionPolicy) -> None:
    with pytest.raises(ConfigurationError, match="file path"):
        check_url(url, policy)


def test_sqlite_uri_mode_is_refused(root: pathlib.Path, policy: ConnectionPolicy) -> None:
    with pytest.raises(ConfigurationError, match="option 'uri'"):
        check_url(f"sqlite:///{root}/x.db?uri=true", policy)


# --- redaction and opening ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://app:s3cret@127.0.0.1:3306/db", "mysql://app:***@127.0.0.1:3306/db"),
        ("postgresql://app:p%40ss@db/app", "postgresql://app:***@db/app"),
        ("postgresql://app@db/app?password=s3cret&x=1", "postgresql://app@db/app?password=***&x=1"),
        ("mysql://app@127.0.0.1/db", "mysql://app@127.0.0.1/db"),
        ("sqlite:///var/x.db", "sqlite:///var/x.db"),
    ],
)
def test_redact_url_hides_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_open_database_refusal_names_the_connection(policy: ConnectionPolicy) -> None:
    spec = ConnectionSpec(name="legacy", url="mysql://root:pw@db.example.com/legacy")
    with pytest.raises(ConfigurationError) as refused:
        open_database(spec, policy, environ={})
    assert "connection 'legacy'" in str(refused.value)
    assert "pw" not in str(refused.value).replace("legacy", "")


def test_open_database_refuses_an_unknown_timezone(
    root: pathlib.Path, policy: ConnectionPolicy
) -> None:
    spec = ConnectionSpec(name="legacy", url=f"sqlite:///{root}/x.db", timezone="Mars/Olympus")
    with pytest.raises(ConfigurationError, match="timezone 'Mars/Olympus'"):
        open_database(spec, policy, environ={})


def test_open_database_expands_placeholders_from_the_given_environment(
    root: pathlib.Path, policy: ConnectionPolicy
) -> None:
    spec = ConnectionSpec(name="legacy", url="sqlite:///${DIFFMIG_DB}", timezone="Europe/Berlin")
    db = open_database(spec, policy, environ={"DIFFMIG_DB": str(root / "legacy.db")})
    try:
        assert db.dialect == "sqlite"
        assert db.name == "legacy"
        assert db.timezone == zoneinfo.ZoneInfo("Europe/Berlin")
        assert db.table_names() == []
    finally:
        db.close()


def test_open_database_reads_os_environ_by_default(
    root: pathlib.Path, policy: ConnectionPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(os.environ, "DIFFMIG_TEST_SQLITE_FILE", str(root / "env.db"))
    db = open_database(
        ConnectionSpec(name="env", url="sqlite:///${DIFFMIG_TEST_SQLITE_FILE}"), policy
    )
    try:
        assert db.server_version().startswith("SQLite 3.")
    finally:
        db.close()
