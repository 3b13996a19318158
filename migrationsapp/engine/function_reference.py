"""What the mapping editor shows of each library function: one line of what it does and an
example call.

The signature is not written here: it is read from the function itself
(``builtin_functions.BUILTIN_FUNCTIONS``), and the example's result is computed by evaluating the
example, so neither can drift from the code. Every example is also one of the evaluated
examples of docs/mapping.md (a test holds the two together).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from migrationsapp.engine.builtin_functions import BUILTIN_FUNCTIONS


@dataclass(frozen=True)
class FunctionReference:
    summary: str
    example: str  # an expression made of constants


REFERENCE: Mapping[str, FunctionReference] = MappingProxyType(
    {
        "trim": FunctionReference(
            "Removes leading and trailing whitespace.", "trim('  Ada Lovelace ')"
        ),
        "lower": FunctionReference("Lower-cases text.", "lower('ADA@Example.ORG')"),
        "upper": FunctionReference("Upper-cases text.", "upper('nyc')"),
        "title": FunctionReference(
            "Each word capitalised, as Python's str.title does.", 'title("o\'brien mc-dowell")'
        ),
        "collapse_spaces": FunctionReference(
            "Every run of whitespace becomes one space; trimmed.",
            "collapse_spaces('  Ada \\t  Lovelace\\n')",
        ),
        "email": FunctionReference(
            "Trims and lower-cases an address (the format rule checks it).",
            "email('  Ada.Lovelace@Example.ORG ')",
        ),
        "str": FunctionReference("The value as text.", "str(12.50)"),
        "to_int": FunctionReference("An integer from a number or integral text.", "to_int(' 42 ')"),
        "to_decimal": FunctionReference("A finite decimal.", "to_decimal('12.50')"),
        "to_bool": FunctionReference(
            "A boolean from 1/0, Y/N, yes/no, true/false (any case).", "to_bool('Yes')"
        ),
        "parse_date": FunctionReference(
            "Strict: text matching the strptime format, as a date.",
            "parse_date('07/03/2021', '%d/%m/%Y')",
        ),
        "legacy_date": FunctionReference(
            "Lenient: YYYY-MM-DD, MM/DD/YYYY, DD.MM.YYYY; zero or impossible dates are null.",
            "legacy_date('2021-3-7')",
        ),
        "phone_e164": FunctionReference(
            "The number in E.164 form; an invalid number fails the row.",
            "phone_e164('(202) 456-1111', 'US')",
        ),
        "map": FunctionReference(
            "mapping[v], or default when v is not one of its keys.",
            "map('Y', {'Y': 'active', 'N': 'inactive'}, 'unknown')",
        ),
        "coalesce": FunctionReference(
            "The first argument that is not null.", "coalesce(None, '', 'fallback')"
        ),
        "default": FunctionReference("d when v is null or blank text.", "default('   ', 'n/a')"),
        "concat": FunctionReference(
            "The non-null arguments as text, joined.", "concat('P-', 42, None, '/', 3)"
        ),
        "regex_replace": FunctionReference(
            "Every match of an RE2 pattern replaced.",
            "regex_replace('(555) 010-0199', '[^0-9]', '')",
        ),
    }
)


def signature(name: str) -> str:
    """``map(v, mapping, default=None)``: a library function's signature as users write it."""
    parts = []
    for parameter in inspect.signature(BUILTIN_FUNCTIONS[name]).parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            parts.append(f"*{parameter.name}")
        elif parameter.default is not parameter.empty:
            parts.append(f"{parameter.name}={parameter.default!r}")
        else:
            parts.append(parameter.name)
    return f"{name}({', '.join(parts)})"
