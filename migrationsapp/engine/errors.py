"""The one error hierarchy of the engine.

Two families matter to whoever catches them:

* ``TerminalError``: retrying changes nothing. A bad mapping is refused before a run
  starts; a bad row is quarantined and the run goes on.
* ``TransientError``: the world hiccupped (a connection dropped, a lock timed out).
  The unit stops at its last checkpoint and is resumed.

Every message names the entity, the key or field where known, the cause, and what to do.
"""

from __future__ import annotations


class DiffmigError(Exception):
    """Base of every error the engine raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        if hint:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class TerminalError(DiffmigError):
    """An error that a retry cannot fix."""


class TransientError(DiffmigError):
    """An error that may pass: stop at the checkpoint and resume later."""


class ConfigurationError(TerminalError):
    """A connection or setting is refused (forbidden host, unknown variable, bad URL)."""


class MappingError(TerminalError):
    """A mapping definition is refused. Carries every problem found, not just the first."""

    def __init__(self, problems: list[MappingProblem] | MappingProblem | str) -> None:
        if isinstance(problems, str):
            problems = [MappingProblem(entity=None, field=None, reason=problems)]
        elif isinstance(problems, MappingProblem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class MappingProblem:
    """One reason a mapping is refused: the entity, the field and why."""

    __slots__ = ("entity", "field", "reason")

    def __init__(self, *, entity: str | None, field: str | None, reason: str) -> None:
        self.entity = entity
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        where = []
        if self.entity:
            where.append(f"entity {self.entity!r}")
        if self.field:
            where.append(f"field {self.field!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason

    def __repr__(self) -> str:
        return f"MappingProblem({self!s})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MappingProblem) and (
            (self.entity, self.field, self.reason) == (other.entity, other.field, other.reason)
        )

    def __hash__(self) -> int:
        return hash((self.entity, self.field, self.reason))


class RowError(TerminalError):
    """One source row cannot be migrated: it goes to quarantine with this reason."""

    def __init__(
        self,
        reason: str,
        *,
        field: str | None = None,
        rule: str = "transform",
        value: object = None,
    ) -> None:
        self.reason = reason
        self.field = field
        self.rule = rule
        self.value = value
        where = f"field {field!r}: " if field else ""
        super().__init__(f"{where}{reason}")


class ExpressionError(TerminalError):
    """An expression does not parse, is too large, or uses a name it may not."""


class DeleteGuardError(TerminalError):
    """A run would delete more than the entity's allowed share, or the source read ended early."""


class ReadEndedEarlyError(DeleteGuardError):
    """A source stream stopped short of the rows its snapshot holds, without an error.

    The keys it did not read would look deleted: the entity is refused, like the delete guard.
    """


class StateTransitionError(TerminalError):
    """A session cannot move from its current state to the one asked for."""


class LeaseLostError(TransientError):
    """Another worker holds this unit's lease: this copy stops without writing."""


class SourceUnavailableError(TransientError):
    """A database could not be reached or dropped the connection."""
