"""The connection policy: placeholders, allowed hosts, the SQLite root, refused options.

Nothing here reaches a server: every refusal happens before a connection is attempted.
"""

from __future__ import annotations

import os
import pathlib
import socket
import zoneinfo
from urllib.parse import unquote

import pytest

from migrationsapp.engine.connection_policy import (
    ControlDatabase,
    control_from_settings,
    template_problems,
)
from migrationsapp.engine.connection_urls import expand_url, strip_password
from migrationsapp.engine.connectors import (
    ConnectionPolicy,
    ConnectionSpec,
    check_url,
    expand_placeholders,
    open_database,
    placeholder_names,
    redact_url,
    resolved_url,
)
from migrationsapp.engine.errors import ConfigurationError
from tests.support.reliability import record

CANARY = "Cn4ry-P@ss/w0rd"
ENCODED_CANARY = "Cn4ry-P%40ss%2Fw0rd"


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
        "postgresql://127.0.0.1:5432/app?sslmode=require&connect_timeout=5",
        "mysql://root@127.0.0.1/legacy?charset=utf8mb4&read_timeout=30",
    ],
)
def test_allowed_urls_pass(url: str, policy: ConnectionPolicy) -> None:
    check_url(url, policy)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("mysql://root@db.example.com:3306/legacy", "db.example.com"),
        ("postgresql://u@10.0.0.5/app", "10.0.0.5"),
        ("postgresql://u@127.0.0.1,evil.example/app", "127.0.0.1,evil.example"),
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


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@/app",
        "postgresql:///app",
        "mysql://root@/legacy",
        "mysql://root@localhost/legacy?unix_socket=/run/mysqld/mysqld.sock",
        "postgresql://postgres@127.0.0.1/app?host=/var/run/postgresql",
        "postgresql://u@127.0.0.1/app?host=evil.example",
        "postgresql://u@127.0.0.1/app?hostaddr=10.1.1.1",
    ],
)
def test_local_sockets_and_moved_hosts_are_refused_whatever_the_allowed_hosts(
    url: str, root: pathlib.Path
) -> None:
    everything_local = ConnectionPolicy(
        allowed_hosts=("127.0.0.1", "localhost", "evil.example", "10.1.1.1"), sqlite_root=root
    )
    with pytest.raises(ConfigurationError, match=r"host|socket|moves the connection"):
        check_url(url, everything_local)


def test_an_allowed_host_with_a_port_pins_the_port(root: pathlib.Path) -> None:
    pinned = ConnectionPolicy(allowed_hosts=("127.0.0.1:5432", "[::1]:3306"), sqlite_root=root)
    check_url("postgresql://u@127.0.0.1/app", pinned)
    check_url("mysql://u@[::1]:3306/app", pinned)
    with pytest.raises(ConfigurationError) as refused:
        check_url("mysql://u@127.0.0.1:6379/app", pinned)
    assert str(refused.value) == (
        "port 6379 of host '127.0.0.1' in mysql://u@127.0.0.1:6379/app is refused: "
        "DIFFMIG_ALLOWED_DB_HOSTS (127.0.0.1:5432, [::1]:3306) allows that host on other "
        "ports only"
    )


def test_a_database_name_is_required(policy: ConnectionPolicy) -> None:
    with pytest.raises(ConfigurationError, match="name the database"):
        check_url("postgresql://postgres@127.0.0.1:5432", policy)


@pytest.mark.parametrize(
    "url",
    ["postgresql://u%0AFLUSHALL@127.0.0.1/app", "mysql://u%0D%0AQUIT@127.0.0.1/app"],
)
def test_control_characters_in_names_are_refused(url: str, policy: ConnectionPolicy) -> None:
    # Another protocol on an allowed port (Redis) would read a line break as a new command.
    with pytest.raises(ConfigurationError, match="the user holds a control character"):
        check_url(url, policy)


# --- file-reading options ------------------------------------------------------------


REFUSED_OPTIONS = [
    "local_infile=1",
    "LOCAL_INFILE=true",
    "read_default_file=/etc/passwd",
    "Read_Default_Group=client",
    "init_command=SELECT 1",
    "passfile=/root/.pgpass",
    "service=prod",
    "ssl_ca=/etc/ssl/private/ca.pem",
    "ssl_key=/root/.ssh/id_rsa",
    "ssl_cert=/root/cert.pem",
    "sslkey=/root/.postgresql/postgresql.key",
    "sslcert=/root/.postgresql/postgresql.crt",
    "sslrootcert=/etc/shadow",
    "sslkeylogfile=/tmp/keys",
    "options=-c search_path=public",
    "unix_socket=/run/mysqld/mysqld.sock",
    "password=s3cret",
    "passwd=s3cret",
    "pass%77ord=s3cret",
    "dbname=diffmig",
    "port=6379",
    "user=root",
    "compress=1",
]


@pytest.mark.parametrize("option", REFUSED_OPTIONS)
@pytest.mark.parametrize("scheme", ["mysql", "postgresql"])
def test_driver_options_outside_the_allow_list_are_refused_naming_the_option(
    option: str, scheme: str, policy: ConnectionPolicy
) -> None:
    name = unquote(option.split("=")[0])
    with pytest.raises(ConfigurationError) as refused:
        check_url(f"{scheme}://root@127.0.0.1/legacy?connect_timeout=5&{option}", policy)
    message = str(refused.value)
    assert f"driver option {name!r}" in message
    assert "refused" in message
    assert "=" + option.split("=")[1] not in message  # the value is never echoed


def test_driver_option_refusals_are_recorded(policy: ConnectionPolicy) -> None:
    held = 0
    for scheme in ("mysql", "postgresql"):
        for option in REFUSED_OPTIONS:
            try:
                check_url(f"{scheme}://root@127.0.0.1/legacy?{option}", policy)
            except ConfigurationError:
                held += 1
    assert held == 2 * len(REFUSED_OPTIONS)
    record(
        "hostile connection",
        "driver options outside the allow-list (files, sockets, server options, password)",
        tried=2 * len(REFUSED_OPTIONS),
        held=held,
        outcome="refused before connecting, naming the option, never echoing its value",
    )


@pytest.mark.parametrize(
    "option", ["sslmode=whatever", "connect_timeout=5;DROP", "application_name=a%0Ab"]
)
def test_allowed_options_with_odd_values_are_refused(option: str, policy: ConnectionPolicy) -> None:
    with pytest.raises(ConfigurationError, match="has a value diffmig does not pass on"):
        check_url(f"postgresql://u@127.0.0.1/app?{option}", policy)


def test_unsupported_scheme_and_driver_are_refused(policy: ConnectionPolicy) -> None:
    with pytest.raises(ConfigurationError, match="scheme 'mssql' is not supported"):
        check_url("mssql://sa@127.0.0.1/legacy", policy)
    with pytest.raises(ConfigurationError, match="driver 'mysqldb' is not supported"):
        check_url("mysql+mysqldb://root@127.0.0.1/legacy", policy)
    with pytest.raises(ConfigurationError, match="not a database URL"):
        check_url("not a url", policy)


def test_a_repeated_option_is_refused(policy: ConnectionPolicy) -> None:
    with pytest.raises(ConfigurationError, match="given more than once"):
        check_url("postgresql://u@127.0.0.1/app?sslmode=disable&sslmode=require", policy)


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
        (
            "postgresql://app@db/app?password=s3cret&sslmode=require&x=1",
            "postgresql://app@db/app?password=***&sslmode=require&x=***",
        ),
        ("postgresql://app@db/app?pass%77ord=s3cret", "postgresql://app@db/app?pass%77ord=***"),
        ("mysql://app@127.0.0.1/db", "mysql://app@127.0.0.1/db"),
        ("sqlite:///var/x.db", "sqlite:///var/x.db"),
        ("sqlite:///var/a:b@c.db", "sqlite:///var/a:b@c.db"),
        # Unencoded '@', '/', '#' or '?' in the password: hidden whole, up to the last '@'.
        (f"mysql://app:{CANARY}@127.0.0.1/db", "mysql://app:***@127.0.0.1/db"),
        ("mysql://app:a#b?c@127.0.0.1/db", "mysql://app:***@127.0.0.1/db"),
        ("mysql://app:pw@127.0.0.1/db#frag", "mysql://app:***@127.0.0.1/db"),
    ],
)
def test_redact_url_hides_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://app:{CANARY}@127.0.0.1/db",
        "mysql://app:ab/cd@127.0.0.1/db",
        "mysql://app:ab?cd@127.0.0.1/db",
        "mysql://app:ab#cd@127.0.0.1/db",
        "postgresql://app:p@ss@127.0.0.1:5432/db",
    ],
)
def test_a_password_with_unencoded_separators_is_refused_without_a_trace_of_it(
    url: str, policy: ConnectionPolicy
) -> None:
    password = url.split("app:", 1)[1].rsplit("@", 1)[0]
    with pytest.raises(ConfigurationError) as refused:
        check_url(url, policy)
    message = str(refused.value)
    assert "percent-encode" in message
    for piece in {password, *password.replace("@", "/").replace("?", "/").split("/")}:
        if len(piece) > 3:
            assert piece not in message
    assert template_problems(url) and all(password not in p for p in template_problems(url))
    assert password not in strip_password(url)


def test_ambiguous_passwords_are_recorded(policy: ConnectionPolicy) -> None:
    urls = [f"mysql://a:{p}@127.0.0.1/db" for p in (CANARY, "x@y", "x/y@z", "x?y", "x#y")]
    held = 0
    for url in urls:
        try:
            check_url(url, policy)
        except ConfigurationError as refused:
            held += "a:***@127.0.0.1/db" in str(refused)
    assert held == len(urls)
    record(
        "secrets",
        "password with an unencoded '@', '/', '?' or '#' in a URL",
        tried=len(urls),
        held=held,
        outcome="refused; the refusal shows the URL with the whole password hidden",
    )


# --- expansion --------------------------------------------------------------------------


def test_a_placeholder_password_is_percent_encoded_into_the_user_part() -> None:
    environ = {"DIFFMIG_PW": CANARY, "DIFFMIG_USER": "app@corp"}
    url = expand_url("mysql://${DIFFMIG_USER}:${DIFFMIG_PW}@127.0.0.1:3306/db", environ)
    assert url == f"mysql://app%40corp:{ENCODED_CANARY}@127.0.0.1:3306/db"
    assert expand_url("mysql://${DIFFMIG_USER}@127.0.0.1/db", environ) == (
        "mysql://app%40corp@127.0.0.1/db"
    )


def test_a_whole_url_placeholder_is_taken_as_a_url() -> None:
    environ = {"DIFFMIG_URL": f"mysql://app:{ENCODED_CANARY}@127.0.0.1/db"}
    assert expand_url("${DIFFMIG_URL}", environ) == environ["DIFFMIG_URL"]
    assert expand_url("sqlite:///${DIFFMIG_URL}", {"DIFFMIG_URL": "a/b.db"}) == "sqlite:///a/b.db"


def test_a_placeholder_password_reaches_the_url_object_intact(
    policy: ConnectionPolicy,
) -> None:
    spec = ConnectionSpec(name="legacy", url="mysql://app:${DIFFMIG_PW}@127.0.0.1/db")
    url = resolved_url(spec, policy, {"DIFFMIG_PW": CANARY})
    assert url.password == CANARY
    assert CANARY not in repr(url) and CANARY not in repr(spec)


def test_a_stored_password_joins_the_url_object_only(policy: ConnectionPolicy) -> None:
    spec = ConnectionSpec(name="legacy", url="mysql://app@127.0.0.1/db", password=CANARY)
    assert CANARY not in repr(spec)
    assert resolved_url(spec, policy, {}).password == CANARY
    both = ConnectionSpec(name="legacy", url="mysql://app:pw@127.0.0.1/db", password=CANARY)
    with pytest.raises(ConfigurationError, match="gives a password and one is stored too"):
        resolved_url(both, policy, {})


def test_refusals_of_an_expanded_url_never_chain_the_parser_error(
    policy: ConnectionPolicy,
) -> None:
    spec = ConnectionSpec(name="legacy", url="${DIFFMIG_URL}")
    with pytest.raises(ConfigurationError) as refused:
        resolved_url(spec, policy, {"DIFFMIG_URL": f"mysql://app:{ENCODED_CANARY}@127.0.0.1:x/db"})
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    assert ENCODED_CANARY not in str(refused.value)


# --- the control database ---------------------------------------------------------------


@pytest.fixture
def pg_control(root: pathlib.Path) -> ConnectionPolicy:
    return ConnectionPolicy(
        allowed_hosts=("127.0.0.1", "localhost", "::1", socket.gethostname()),
        sqlite_root=root,
        control=(ControlDatabase(backend="postgresql", name="diffmig", host="localhost"),),
    )


CONTROL_URLS = [
    "postgresql://postgres@127.0.0.1/diffmig",
    "postgresql://postgres@localhost:5432/diffmig",
    "postgres://other:pw@[::1]:5432/diffmig",
    "postgresql+psycopg://postgres@LOCALHOST./diffmig",
    f"postgresql://postgres@{socket.gethostname()}/diffmig",
]


@pytest.mark.parametrize("url", CONTROL_URLS)
def test_the_control_database_is_refused_under_any_name_of_its_host(
    url: str, pg_control: ConnectionPolicy
) -> None:
    with pytest.raises(ConfigurationError, match="it is diffmig's control database"):
        check_url(url, pg_control)


def test_other_databases_and_ports_of_the_control_server_pass(pg_control: ConnectionPolicy) -> None:
    check_url("postgresql://postgres@127.0.0.1/diffmig_legacy", pg_control)
    check_url("postgresql://postgres@127.0.0.1:5433/diffmig", pg_control)
    check_url("mysql://root@127.0.0.1:5432/diffmig", pg_control)  # another kind of server


def test_control_database_refusals_are_recorded(pg_control: ConnectionPolicy) -> None:
    held = 0
    for url in CONTROL_URLS:
        try:
            check_url(url, pg_control)
        except ConfigurationError as refused:
            held += "control database" in str(refused)
    assert held == len(CONTROL_URLS)
    record(
        "hostile connection",
        "URL naming the PostgreSQL control database (localhost, 127.0.0.1, ::1, this host's name)",
        tried=len(CONTROL_URLS),
        held=held,
        outcome="refused before connecting, saying it is the control database",
    )


def test_control_from_settings_skips_in_memory_databases(tmp_path: pathlib.Path) -> None:
    entries = [
        {"ENGINE": "django.db.backends.sqlite3", "NAME": "file:memorydb?mode=memory&cache=shared"},
        {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "c.sqlite3")},
        {"ENGINE": "django.db.backends.postgresql", "NAME": "d", "HOST": "", "PORT": "5433"},
        {"ENGINE": "django.db.backends.postgresql", "NAME": "d", "HOST": "", "PORT": "5433"},
    ]
    assert control_from_settings(entries) == (
        ControlDatabase(backend="sqlite", name=str(tmp_path / "c.sqlite3")),
        ControlDatabase(backend="postgresql", name="d", host="", port=5433),
    )


def test_the_control_sqlite_file_is_refused_by_path_symlink_or_hard_link(
    tmp_path: pathlib.Path,
) -> None:
    root = tmp_path / "databases"
    root.mkdir()
    control_file = tmp_path / "control" / "diffmig.sqlite3"
    control_file.parent.mkdir()
    control_file.write_bytes(b"")
    policy = ConnectionPolicy(
        allowed_hosts=("127.0.0.1",),
        sqlite_root=root,
        control=(ControlDatabase(backend="sqlite", name=str(control_file)),),
    )
    os.link(control_file, root / "hard.sqlite3")
    (root / "soft.sqlite3").symlink_to(control_file)
    with pytest.raises(ConfigurationError, match="the control database's own file"):
        check_url(f"sqlite:///{root}/hard.sqlite3", policy)
    with pytest.raises(ConfigurationError, match="outside DIFFMIG_SQLITE_ROOT"):
        check_url(f"sqlite:///{root}/soft.sqlite3", policy)
    with pytest.raises(ConfigurationError, match="outside DIFFMIG_SQLITE_ROOT"):
        check_url(f"sqlite:///{control_file}", policy)
    check_url(f"sqlite:///{root}/legacy.sqlite3", policy)


def test_a_sqlite_root_holding_the_control_file_refuses_every_sqlite_file(
    tmp_path: pathlib.Path,
) -> None:
    control_file = tmp_path / "diffmig.sqlite3"
    control_file.write_bytes(b"")
    policy = ConnectionPolicy(
        allowed_hosts=("127.0.0.1",),
        sqlite_root=tmp_path,
        control=(ControlDatabase(backend="sqlite", name=str(control_file)),),
    )
    for name in ("diffmig.sqlite3", "legacy.sqlite3"):
        with pytest.raises(ConfigurationError, match="holds the control database's file"):
            check_url(f"sqlite:///{tmp_path / name}", policy)


def test_open_database_refusal_names_the_connection(policy: ConnectionPolicy) -> None:
    spec = ConnectionSpec(name="legacy", url="mysql://root:pw@db.example.com/legacy")
    with pytest.raises(ConfigurationError) as refused:
        open_database(spec, policy, environ={})
    assert "connection 'legacy'" in str(refused.value)
    assert ":pw@" not in str(refused.value)


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
