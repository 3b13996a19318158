"""Generating the messy legacy clinic, deterministically from a seed.

``generate_clinic(seed, scale)`` makes ``5·scale`` offices, ``20·scale`` doctors, ``120·scale``
patients and ``300·scale`` appointments, with the mess a real legacy database has: names in
odd case with stray spaces, emoji, zero and impossible dates, text dates in three formats,
'Y'/'N' and 0/1 flags, DECIMAL money, patient codes with ``/``, spaces, commas, a backslash,
a trailing space and a pair differing only in case, and a composite key.

A few rows are wrong on purpose (listed in ``ClinicData.planted``) and must fail, whatever
the scale:

* an office whose phone is not a valid US number (``phone_e164`` fails); it has one doctor,
  so that doctor, its patient and their appointments fail too (missing parent);
* a doctor with the email ``'bob@'`` (``format``) and one whose email repeats another's in
  other case and with a trailing space (``unique``: the later key fails);
* a patient whose name is blank (``required``) and one whose ``doctor_id`` is 0, the legacy
  "no doctor" that points at nothing (missing parent).

The second office is small (two doctors), so that a change round can delete a whole office
without deleting a large share of any table.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import unicodedata
from decimal import Decimal

from migrationsapp.demo.clinic_model import ENTITIES, ZERO_DATE, ClinicData, Row, row_key

BASE_COUNTS = {"office": 5, "doctor": 20, "patient": 120, "appointment": 300}
LAST_LEGACY_EDIT = dt.datetime(2024, 6, 30, 18, 0, 0)
INVALID_OFFICE_PHONE = "555-0100"
ORPHAN_DOCTOR_ID = 0

OFFICE_NAMES = (
    "Downtown Clinic",
    "Riverside Health",
    "North Hills Practice",
    "Harbor Medical",
    "Lakeside Family Care",
    "Old Town Surgery",
    "Westgate Pediatrics",
    "Sunrise Clinic",
)
OFFICE_NOTES = (
    "Parking behind the building 🚗",
    "Closed on Fridays",
    "Wheelchair access via side door ♿",
    "Moved here in 2009",
    None,
)
FIRST_NAMES = (
    "anna", "carlos", "dana", "émile", "fatima", "george", "hana", "ivan", "josé", "kim",
    "liam", "maría", "noah", "olga", "pedro", "quinn", "rosa", "sven", "tomás", "uma",
    "victor", "wen", "xavier", "yuki", "zoë",
)  # fmt: skip
LAST_NAMES = (
    "smith", "o'brien", "garcía", "nguyen", "müller", "kowalski", "ivanova", "dubois",
    "rossi", "tanaka", "okafor", "silva", "johansson", "haddad", "patel", "lee",
)  # fmt: skip
EMOJI = ("🌸", "😀", "⭐", "🎉", "🦷")
APPOINTMENT_NOTES = (
    "follow-up",
    "Annual check-up ✅",
    "bring X-rays",
    "🦷 dental referral",
    "called twice, no answer",
    None,
)
AREA_CODES = ("201", "212", "305", "312", "415", "503", "617", "702", "713", "206")
EMAIL_DOMAINS = ("clinic.example", "health.example.org")
# Patient codes that legacy users typed by hand; they replace generated ones at these positions.
ODD_CODES = {10: "NEW/ 1,2", 11: "A/B 7", 12: "Smith, J", 13: "OLD\\3", 15: "W 5 "}
CASE_TWIN_OF = 6  # the patient at 14 gets the lower-case twin of the code at this position


def ascii_slug(text: str) -> str:
    """Letters a-z only: 'O'Brien ' -> 'obrien', 'José' -> 'jose'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return re.sub(r"[^a-z]", "", decomposed.encode("ascii", "ignore").decode().lower())


def messy(rng: random.Random, text: str) -> str:
    """``text`` in a random case, sometimes with stray spaces around it."""
    style = rng.randrange(4)
    if style == 0:
        text = text.upper()
    elif style == 1:
        text = text.title()
    elif style == 2:
        text = "".join(c.upper() if rng.random() < 0.3 else c for c in text)
    pad = rng.randrange(5)
    if pad == 0:
        return f"  {text}"
    if pad == 1:
        return f"{text}   "
    return text


def us_phone(rng: random.Random) -> str:
    """A valid US number (fictional 555-01xx line) in one of the formats people type."""
    area, line = rng.choice(AREA_CODES), f"{rng.randrange(100, 200):04d}"
    return rng.choice(
        (
            f"({area}) 555-{line}",
            f"{area}-555-{line}",
            f"{area}.555.{line}",
            f"+1 {area} 555 {line}",
            f"{area}555{line}",
        )
    )


def legacy_text_date(rng: random.Random, day: dt.date) -> str:
    """``day`` as a legacy application wrote it: ISO, US or European, padded or not."""
    form = rng.randrange(5)
    if form == 0:
        return day.isoformat()
    if form == 1:
        return f"{day.month}/{day.day}/{day.year}"
    if form == 2:
        return f"{day.month:02d}/{day.day:02d}/{day.year}"
    if form == 3:
        return f"{day.day:02d}.{day.month:02d}.{day.year}"
    return f"{day.day}.{day.month}.{day.year}"


def random_datetime(rng: random.Random, start: dt.datetime, days: int) -> dt.datetime:
    """A whole-second moment within ``days`` after ``start``."""
    return start + dt.timedelta(seconds=rng.randrange(days * 86400))


def doctor_email(rng: random.Random, first: str, last: str, doctor_id: int) -> str:
    """A unique address (the id is in it), sometimes in odd case or with a trailing space."""
    address = f"{ascii_slug(first)}.{ascii_slug(last)}{doctor_id}@{rng.choice(EMAIL_DOMAINS)}"
    if rng.random() < 0.2:
        address = address.capitalize()
    if rng.random() < 0.1:
        address += " "
    return address


def make_office(rng: random.Random, office_id: int, updated_at: dt.datetime) -> Row:
    """One office row; names repeat with a number once the list runs out."""
    base = OFFICE_NAMES[(office_id - 1) % len(OFFICE_NAMES)]
    number = (office_id - 1) // len(OFFICE_NAMES)
    name = base if number == 0 else f"{base} {number + 1}"
    opened: dt.date | str | None = dt.date(1990, 1, 1) + dt.timedelta(days=rng.randrange(12000))
    if rng.random() < 0.25:
        opened = rng.choice((ZERO_DATE, None))
    return {
        "id": office_id,
        "name": rng.choice((name, f" {name}", f"{name}  ")),
        "phone": us_phone(rng) if rng.random() < 0.9 else None,
        "opened": opened,
        "notes": rng.choice(OFFICE_NOTES),
        "updated_at": updated_at,
    }


def make_doctor(rng: random.Random, doctor_id: int, office_id: int, updated_at: dt.datetime) -> Row:
    """One doctor row with messy names, a unique email, a 'Y'/'N' flag and DECIMAL salary."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    hired = random_datetime(rng, dt.datetime(2000, 1, 1), 8700) if rng.random() < 0.9 else None
    salary = Decimal(rng.randrange(6_000_000, 25_000_000)).scaleb(-2)
    return {
        "id": doctor_id,
        "office_id": office_id,
        "first_name": messy(rng, first),
        "last_name": messy(rng, last),
        "email": doctor_email(rng, first, last, doctor_id) if rng.random() < 0.95 else None,
        "active_flag": "Y" if rng.random() < 0.8 else "N",
        "salary": salary if rng.random() < 0.9 else None,
        "hired": hired,
        "updated_at": updated_at,
    }


def make_patient(
    rng: random.Random, code: str, doctor_id: int | None, updated_at: dt.datetime
) -> Row:
    """One patient row: a messy name (emoji now and then) and a birth date in legacy text."""
    name = messy(rng, f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}")
    if rng.random() < 0.1:
        name = f"{name} {rng.choice(EMOJI)}"
    roll = rng.random()
    if roll < 0.06:
        birth: str | None = ZERO_DATE
    elif roll < 0.1:
        birth = rng.choice(("", None))
    elif roll < 0.12:
        birth = rng.choice(("2021-02-30", "31.04.1980", "2/30/1975"))  # impossible dates
    else:
        day = dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(30000))
        birth = legacy_text_date(rng, day)
    return {
        "code": code,
        "doctor_id": doctor_id,
        "name": name,
        "birth": birth,
        "vip": 1 if rng.random() < 0.1 else 0,
        "phone": us_phone(rng) if rng.random() < 0.85 else None,
        "updated_at": updated_at,
    }


def make_appointment(
    rng: random.Random, code: str, seq: int, doctor_id: int | None, updated_at: dt.datetime
) -> Row:
    """One appointment row on a quarter hour of a working day."""
    day = dt.date(2023, 1, 2) + dt.timedelta(days=rng.randrange(900))
    starts = dt.datetime.combine(day, dt.time(rng.randrange(8, 18), rng.choice((0, 15, 30, 45))))
    note = rng.choice(APPOINTMENT_NOTES)
    if note is not None and rng.random() < 0.1:
        note = f"{note} {rng.choice(EMOJI)}"
    return {
        "patient_code": code,
        "seq": seq,
        "doctor_id": doctor_id,
        "starts": starts,
        "note": note,
        "updated_at": updated_at,
    }


def patient_codes(count: int) -> list[str]:
    """``P-0001``… with the hand-typed oddities of ``ODD_CODES`` and one case twin."""
    width = max(4, len(str(count)))
    codes = [f"P-{i:0{width}d}" for i in range(1, count + 1)]
    for position, code in ODD_CODES.items():
        if position < count:
            codes[position] = code
    if count > 14:
        codes[14] = codes[CASE_TWIN_OF].lower()
    return codes


def generate_clinic(seed: int, scale: int = 1) -> ClinicData:
    """The legacy clinic for ``seed`` (the same seed gives the same rows) at ``scale``."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    rng = random.Random(seed)
    counts = {entity: base * scale for entity, base in BASE_COUNTS.items()}
    start = dt.datetime(2020, 1, 1)

    def stamp() -> dt.datetime:
        return random_datetime(rng, start, (LAST_LEGACY_EDIT - start).days)

    rows: dict[str, dict[str, Row]] = {entity: {} for entity in ENTITIES}
    planted: dict[str, dict[str, str]] = {entity: {} for entity in ENTITIES}

    def add(entity: str, row: Row) -> None:
        rows[entity][row_key(entity, row)] = row

    offices = [make_office(rng, i, stamp()) for i in range(1, counts["office"] + 1)]
    bad_office = offices[-1]
    bad_office["phone"] = INVALID_OFFICE_PHONE
    offices[1]["opened"] = ZERO_DATE  # there by chance too, but always at least once
    for office in offices:
        add("office", office)
    planted["office"][row_key("office", bad_office)] = "phone: phone_e164"
    good_office_ids = [o["id"] for o in offices[:-1]]

    doctor_ids, next_doctor = [], 100
    for _ in range(counts["doctor"]):
        next_doctor += rng.randint(1, 3)
        doctor_ids.append(next_doctor)
    # The second office is the small one: two doctors.
    small_office, other_offices = good_office_ids[1], [good_office_ids[0], *good_office_ids[2:]]
    doctors = [
        make_doctor(rng, doctor_id, rng.choice(other_offices), stamp()) for doctor_id in doctor_ids
    ]
    for doctor in doctors[3:5]:
        doctor["office_id"] = small_office
    # The first three doctors work in the first office: the holder of an email, a doctor whose
    # email is broken, and one whose email repeats the first's. The last one is alone in the
    # office with the invalid phone.
    original, bob, duplicate, lonely = doctors[0], doctors[1], doctors[2], doctors[-1]
    for doctor in (original, bob, duplicate):
        doctor["office_id"] = good_office_ids[0]
    original["email"] = f"ann.smith{original['id']}@clinic.example"
    bob["email"] = "bob@"
    duplicate["email"] = f"Ann.Smith{original['id']}@Clinic.example "
    lonely["office_id"] = bad_office["id"]
    doctors[3]["first_name"] = f" {doctors[3]['first_name'].strip().lower()}  "
    for doctor in doctors:
        add("doctor", doctor)
    planted["doctor"][row_key("doctor", bob)] = "email: format"
    planted["doctor"][row_key("doctor", duplicate)] = "email: unique"
    protected: dict[str, set[str]] = {entity: set() for entity in ENTITIES}
    protected["doctor"].add(row_key("doctor", original))

    # Planted doctors get exactly one patient each, the others share the rest at random.
    assignable = [d["id"] for d in doctors if d not in (bob, duplicate, lonely)]
    fixed_doctor = {5: bob["id"], 7: duplicate["id"], 8: lonely["id"]}
    patients = []
    for position, code in enumerate(patient_codes(counts["patient"])):
        doctor_id = fixed_doctor.get(position)
        if doctor_id is None and rng.random() < 0.92:
            doctor_id = rng.choice(assignable)
        patients.append(make_patient(rng, code, doctor_id, stamp()))
    # The mess that chance brings anyway, made certain whatever the seed.
    for position, birth in {16: ZERO_DATE, 17: "2021-02-30", 18: "", 19: "7.3.1975"}.items():
        if position < len(patients):
            patients[position]["birth"] = birth
    if len(patients) > 20:
        patients[20]["name"] = f"  {patients[20]['name'].strip().lower()} {EMOJI[0]} "
    blank, orphan = patients[3], patients[4]
    blank["name"], blank["doctor_id"] = "   ", original["id"]
    orphan["doctor_id"] = ORPHAN_DOCTOR_ID
    for patient in patients:
        add("patient", patient)
    planted["patient"][row_key("patient", blank)] = "name: required"
    planted["patient"][row_key("patient", orphan)] = "doctor_id: missing parent"

    # Every patient with an odd code gets an appointment; the rest are spread at random.
    owners = [patients[p] for p in (*ODD_CODES, 14) if p < len(patients)]
    owners += [rng.choice(patients) for _ in range(counts["appointment"] - len(owners))]
    next_seq: dict[str, int] = {}
    for patient in owners:
        seq = next_seq[patient["code"]] = next_seq.get(patient["code"], 0) + 1
        roll = rng.random()
        doctor_id = patient["doctor_id"]
        if roll < 0.08:
            doctor_id = None
        elif roll < 0.2 or doctor_id is None:
            doctor_id = rng.choice(assignable)
        add("appointment", make_appointment(rng, patient["code"], seq, doctor_id, stamp()))

    return ClinicData(
        seed=seed,
        scale=scale,
        rows=rows,
        planted=planted,
        protected=protected,
        # A change round fixes one of these per round, in this order.
        unfixed=[
            ("doctor", row_key("doctor", bob)),
            ("office", row_key("office", bad_office)),
            ("patient", row_key("patient", blank)),
        ],
        next_id={"office": counts["office"] + 1, "doctor": next_doctor + 1},
    )
