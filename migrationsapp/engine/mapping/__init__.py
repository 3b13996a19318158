"""The mapping file (docs/mapping.md): its spec objects, parsing, dumping and checks.

One YAML file describes connections, named functions and entities. This module turns it
into frozen spec objects (``MappingFile`` → ``EntitySpec`` → ``FieldSpec``), dumps them back
in the same shape (load → dump → load is the identity, so import → export → import
creates nothing new), and refuses a bad mapping with *every* problem found at once, each
naming the entity, the field and the reason.

Checks come in two layers:

* ``check_structure`` / ``check_entity``: everything that needs no database (names,
  enumerations, references, dependency cycles, expressions compile, connection URLs);
* ``check_against_tables``: what needs the introspected tables (columns exist, types fit,
  every NOT NULL column without a default is filled).

The row transformer built from a spec lives in ``engine/compile.py``. No Django here.

The pieces: ``spec`` (objects), ``yaml_file`` (the YAML text), ``parse``, ``dump`` (and
fingerprints), ``order``, ``checks`` (no database) and ``tables`` (introspected tables).
"""

from .checks import (
    check_entity,
    check_structure,
)
from .dump import (
    content_fingerprint,
    dump_mapping,
    entity_to_dict,
    mapping_to_yaml,
    used_functions,
)
from .order import (
    dependency_order,
)
from .parse import (
    entity_from_dict,
    parse_mapping,
)
from .spec import (
    CONNECTION_KEYS,
    DEFAULT_MAX_DELETE_SHARE,
    DELETE_POLICIES,
    DETECTIONS,
    ENTITY_KEYS,
    ENTITY_NAME,
    FIELD_KEYS,
    MISSING,
    PLACEHOLDER_PREFIX,
    RULE_KEYS,
    SELF_REFERENCE,
    SUPPORTED_VERSION,
    TOP_KEYS,
    UUID_KIND,
    EntitySpec,
    FieldSpec,
    FrozenMap,
    MappingFile,
)
from .tables import (
    check_against_tables,
    hashed_columns,
)
from .yaml_file import load_mapping_yaml

__all__ = [
    "CONNECTION_KEYS",
    "DEFAULT_MAX_DELETE_SHARE",
    "DELETE_POLICIES",
    "DETECTIONS",
    "ENTITY_KEYS",
    "ENTITY_NAME",
    "FIELD_KEYS",
    "MISSING",
    "PLACEHOLDER_PREFIX",
    "RULE_KEYS",
    "SELF_REFERENCE",
    "SUPPORTED_VERSION",
    "TOP_KEYS",
    "UUID_KIND",
    "EntitySpec",
    "FieldSpec",
    "FrozenMap",
    "MappingFile",
    "check_against_tables",
    "check_entity",
    "check_structure",
    "content_fingerprint",
    "dependency_order",
    "dump_mapping",
    "entity_from_dict",
    "entity_to_dict",
    "hashed_columns",
    "load_mapping_yaml",
    "mapping_to_yaml",
    "parse_mapping",
    "used_functions",
]
