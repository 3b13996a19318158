"""The bench's messy legacy clinic: its MariaDB schema, its sizes, and the SQL that fills it.

Four tables — ``offices`` (~1k), ``doctors`` (~20k), ``patients`` (= SCALE) and
``appointments`` (2 x SCALE, key ``(patient_id, seq)``) — with the mess a 2000s application
leaves behind: zero dates, text dates in three formats, stray spaces and odd case, Latin-1
columns next to utf8mb4 ones holding 4-byte emoji, 'Y'/'y'/'1' flags, NULLs. Every row is
valid once transformed (the bench measures throughput and exactness, not quarantine).

Rows are generated in MariaDB itself (``INSERT … SELECT`` over the SEQUENCE engine), so that
three million rows take about a minute rather than an hour of Python round trips. Each value
is a function of the seed and the row's number (CRC32 of both), so one seed and one scale
always give the same database.
"""

from __future__ import annotations

from dataclasses import dataclass

TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"
LATIN1 = "CHARACTER SET latin1 COLLATE latin1_swedish_ci"

SOURCE_DDL = (
    f"""CREATE TABLE offices (
        id INT NOT NULL,
        name VARCHAR(100) NOT NULL,
        city VARCHAR(60) {LATIN1} NULL,
        phone VARCHAR(40) NULL,
        opened DATE NULL,
        updated_at DATETIME NULL,
        PRIMARY KEY (id)
    ) {TABLE_OPTIONS}""",
    f"""CREATE TABLE doctors (
        id INT NOT NULL,
        office_id INT NOT NULL,
        first_name VARCHAR(60) NOT NULL,
        last_name VARCHAR(60) NOT NULL,
        email VARCHAR(120) NULL,
        phone VARCHAR(40) NULL,
        active_flag CHAR(1) NOT NULL,
        specialty VARCHAR(60) {LATIN1} NULL,
        hired DATE NULL,
        updated_at DATETIME NULL,
        PRIMARY KEY (id),
        KEY idx_doctors_office (office_id)
    ) {TABLE_OPTIONS}""",
    f"""CREATE TABLE patients (
        id INT NOT NULL,
        doctor_id INT NULL,
        first_name VARCHAR(60) NOT NULL,
        last_name VARCHAR(80) NOT NULL,
        birth VARCHAR(20) NULL,
        email VARCHAR(120) NULL,
        city VARCHAR(60) {LATIN1} NULL,
        vip CHAR(1) NOT NULL,
        balance DECIMAL(10,2) NULL,
        notes TEXT NULL,
        updated_at DATETIME NULL,
        PRIMARY KEY (id),
        KEY idx_patients_doctor (doctor_id)
    ) {TABLE_OPTIONS}""",
    f"""CREATE TABLE appointments (
        patient_id INT NOT NULL,
        seq INT NOT NULL,
        doctor_id INT NULL,
        starts DATETIME NOT NULL,
        status CHAR(1) NOT NULL,
        note VARCHAR(200) NULL,
        updated_at DATETIME NULL,
        PRIMARY KEY (patient_id, seq),
        KEY idx_appointments_doctor (doctor_id)
    ) {TABLE_OPTIONS}""",
)


@dataclass(frozen=True)
class Table:
    """One legacy table as the bench sees it: its entity, key and the columns the mapping
    hashes (the key, every ``source`` column and every column an expression names)."""

    entity: str
    name: str
    key: tuple[str, ...]
    hashed: tuple[str, ...]
    destination: str


TABLES = (
    Table("office", "offices", ("id",), ("id", "name", "city", "phone", "opened"), "office"),
    Table(
        "doctor",
        "doctors",
        ("id",),
        (
            "office_id",
            "id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "active_flag",
            "specialty",
            "hired",
        ),
        "doctor",
    ),
    Table(
        "patient",
        "patients",
        ("id",),
        (
            "doctor_id",
            "id",
            "first_name",
            "last_name",
            "birth",
            "email",
            "city",
            "vip",
            "balance",
            "notes",
        ),
        "patient",
    ),
    Table(
        "appointment",
        "appointments",
        ("patient_id", "seq"),
        ("patient_id", "seq", "doctor_id", "starts", "status", "note"),
        "appointment",
    ),
)
TABLE_BY_ENTITY = {t.entity: t for t in TABLES}


@dataclass(frozen=True)
class Sizes:
    offices: int
    doctors: int
    patients: int
    appointments: int

    @property
    def total(self) -> int:
        return self.offices + self.doctors + self.patients + self.appointments

    def of(self, table: str) -> int:
        return getattr(self, table)


def sizes_for(scale: int) -> Sizes:
    """~1k offices and ~20k doctors at the real scales, fewer for a small smoke run."""
    return Sizes(
        offices=min(1000, max(3, scale // 100)),
        doctors=min(20000, max(10, scale // 5)),
        patients=scale,
        appointments=2 * scale,
    )


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def pick(hash_sql: str, values: tuple[str, ...]) -> str:
    """SQL choosing one of ``values`` by a hash expression (ELT is 1-based)."""
    return f"ELT(1 + ({hash_sql}) % {len(values)}, {_sql_list(values)})"


def h(seed: int, salt: str, row: str = "seq") -> str:
    """A deterministic 32-bit hash of the seed, a salt and the row number, in SQL."""
    return f"CRC32(CONCAT('{seed}:{salt}:', {row}))"


# Names as a legacy application stores them: stray spaces, odd case, accents.
FIRST = (
    "anna", " Carlos", "DANA", "émile", "Fatima ", "george", "HANA", "ivan", "José", "kim",
    "Liam", "maría", "noah ", "olga", "PEDRO", "quinn", "rosa", "sven", "tomás", "uma",
    "Victor", "wen", "xavier", "yuki", "zoë",
)  # fmt: skip
FIRST_ASCII = (
    "anna", "carlos", "dana", "emile", "fatima", "george", "hana", "ivan", "jose", "kim",
    "liam", "maria", "noah", "olga", "pedro", "quinn", "rosa", "sven", "tomas", "uma",
    "victor", "wen", "xavier", "yuki", "zoe",
)  # fmt: skip
LAST = (
    "smith", "O'BRIEN", "garcía", " nguyen", "Müller", "kowalski", "ivanova  ", "dubois",
    "rossi", "TANAKA", "okafor", "silva", "johansson", "haddad", "patel", "lee",
)  # fmt: skip
LAST_ASCII = (
    "smith", "obrien", "garcia", "nguyen", "muller", "kowalski", "ivanova", "dubois",
    "rossi", "tanaka", "okafor", "silva", "johansson", "haddad", "patel", "lee",
)  # fmt: skip
# Latin-1 text (stored in latin1 columns): every character fits in one byte there.
CITIES = ("Zürich", "Malmö", "Besançon", "São Paulo", "Köln", "Århus", "Reykjavík", "Nîmes")
SPECIALTIES = ("Cardiología", "Pédiatrie", "Orthopädie", "Médecine générale", "Dermatología")
OFFICE_NAMES = ("downtown clinic", "RIVERSIDE HEALTH", "North hills practice", "harbor medical")
# 4-byte UTF-8 (emoji) in utf8mb4 columns.
NOTES = ("follow-up 🦷", "Annual check-up ✅", "bring X-rays", "allergic to 🥜", "called twice")
AREA_CODES = ("201", "212", "305", "312", "415", "503", "617", "702", "713", "206")
DOMAINS = ("clinic.example", "Health.Example.org")


def _phone(seed: int, salt: str) -> str:
    # Valid US numbers (exchange 2xx-8xx), in the shapes people type them; 10 % NULL.
    area = pick(h(seed, salt + "a"), AREA_CODES)
    exchange = f"(200 + {h(seed, salt + 'x')} % 600)"
    line = f"LPAD({h(seed, salt + 'l')} % 10000, 4, '0')"
    return (
        f"ELT(1 + {h(seed, salt)} % 10, "
        f"CONCAT('(', {area}, ') ', {exchange}, '-', {line}), "
        f"CONCAT({area}, '-', {exchange}, '-', {line}), "
        f"CONCAT('+1 ', {area}, ' ', {exchange}, ' ', {line}), "
        f"CONCAT(' ', {area}, '.', {exchange}, '.', {line}), "
        f"CONCAT({area}, {exchange}, {line}), "
        f"CONCAT('(', {area}, ')', {exchange}, {line}), "
        f"CONCAT({area}, ' ', {exchange}, ' ', {line}), "
        f"CONCAT('1-', {area}, '-', {exchange}, '-', {line}), "
        f"CONCAT({area}, '-', {exchange}, '-', {line}, ' '), "
        "NULL)"
    )


def _zero_or_date(seed: int, salt: str, start: str, days: int) -> str:
    # 5 % zero dates, 5 % NULL, else a day after ``start``.
    r = h(seed, salt)
    return (
        f"CASE WHEN {r} % 20 = 0 THEN '0000-00-00' WHEN {r} % 20 = 1 THEN NULL "
        f"ELSE DATE('{start}') + INTERVAL ({r} DIV 20) % {days} DAY END"
    )


def _updated_at(seed: int, salt: str) -> str:
    return f"TIMESTAMP('2024-01-01') + INTERVAL {h(seed, salt)} % 15000000 SECOND"


def _email(seed: int, salt: str) -> str:
    # Mixed case and stray spaces (the `email` transform trims and lower-cases); 15 % NULL.
    first = pick(h(seed, salt + "f"), FIRST_ASCII)
    last = pick(h(seed, salt + "l"), LAST_ASCII)
    r = h(seed, salt)
    return (
        f"CASE WHEN {r} % 20 < 3 THEN NULL ELSE CONCAT(IF({r} % 7 = 0, ' ', ''), "
        f"IF({r} % 5 = 0, UPPER({first}), {first}), '.', {last}, seq, '@', "
        f"{pick(h(seed, salt + 'd'), DOMAINS)}, IF({r} % 11 = 0, ' ', '')) END"
    )


def _birth(seed: int) -> str:
    # Text dates as typed over the years: ISO, US, German unpadded; zero, empty and NULL.
    r = h(seed, "birth")
    day = f"(DATE('1930-01-01') + INTERVAL ({r} DIV 20) % 30000 DAY)"
    return (
        f"CASE WHEN {r} % 20 < 12 THEN DATE_FORMAT({day}, '%Y-%m-%d') "
        f"WHEN {r} % 20 < 15 THEN DATE_FORMAT({day}, '%m/%d/%Y') "
        f"WHEN {r} % 20 < 17 THEN DATE_FORMAT({day}, '%e.%c.%Y') "
        f"WHEN {r} % 20 = 17 THEN '0000-00-00' WHEN {r} % 20 = 18 THEN '' ELSE NULL END"
    )


def insert_statements(seed: int, sizes: Sizes) -> list[str]:
    """The ``INSERT … SELECT`` statements that fill the four tables (run with an empty sql_mode,
    so that MariaDB stores zero dates as a legacy server did)."""
    s = seed
    offices = f"""INSERT INTO offices
        SELECT seq,
            CONCAT(IF({h(s, "on")} % 3 = 0, '  ', ''), {pick(h(s, "o"), OFFICE_NAMES)}, ' ', seq,
                   IF({h(s, "on")} % 4 = 0, ' ', '')),
            IF({h(s, "oc")} % 10 = 0, NULL, {pick(h(s, "oc"), CITIES)}),
            {_phone(s, "op")},
            {_zero_or_date(s, "oo", "1970-01-01", 15000)},
            {_updated_at(s, "ou")}
        FROM seq_1_to_{sizes.offices}"""
    doctors = f"""INSERT INTO doctors
        SELECT seq, 1 + {h(s, "do")} % {sizes.offices},
            {pick(h(s, "dfn"), FIRST)},
            {pick(h(s, "dln"), LAST)},
            {_email(s, "de")},
            {_phone(s, "dp")},
            {pick(h(s, "da"), ("Y", "Y", "Y", "y", "1", "N", "0"))},
            IF({h(s, "ds")} % 8 = 0, NULL, {pick(h(s, "ds"), SPECIALTIES)}),
            {_zero_or_date(s, "dh", "1980-01-01", 15000)},
            {_updated_at(s, "du")}
        FROM seq_1_to_{sizes.doctors}"""
    patients = f"""INSERT INTO patients
        SELECT seq, 1 + {h(s, "pd")} % {sizes.doctors},
            CONCAT({pick(h(s, "pfn"), FIRST)}, IF({h(s, "pe")} % 50 = 0, ' 🌸', '')),
            {pick(h(s, "pln"), LAST)},
            {_birth(s)},
            {_email(s, "pm")},
            IF({h(s, "pc")} % 5 = 0, NULL, {pick(h(s, "pc"), CITIES)}),
            {pick(h(s, "pv"), ("N", "N", "N", "n", "0", "Y", "y", "1"))},
            IF({h(s, "pb")} % 10 = 0, NULL, ({h(s, "pb")} % 2000000) / 100),
            IF({h(s, "pn")} % 3 = 0, NULL, {pick(h(s, "pn2"), NOTES)}),
            {_updated_at(s, "pu")}
        FROM seq_1_to_{sizes.patients}"""
    appointments = f"""INSERT INTO appointments
        SELECT 1 + (seq - 1) % {sizes.patients}, 1 + (seq - 1) DIV {sizes.patients},
            1 + {h(s, "ad")} % {sizes.doctors},
            TIMESTAMP('2015-01-01') + INTERVAL {h(s, "as")} % 300000000 SECOND,
            {pick(h(s, "ast"), ("B", "D", "D", "D", "C", "X"))},
            IF({h(s, "an")} % 5 < 2, NULL, {pick(h(s, "an2"), NOTES)}),
            {_updated_at(s, "au")}
        FROM seq_1_to_{sizes.appointments}"""
    return [offices, doctors, patients, appointments]
