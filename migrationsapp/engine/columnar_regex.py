"""RE2 patterns and replacements rewritten for polars' Rust regex, where both mean the same.

The vectorized ``regex_replace`` (engine.columnar_functions) runs on polars, whose regular
expressions are Rust's ``regex`` crate: linear time like RE2, but not the same dialect. Rust's
``\\d``, ``\\w``, ``\\s`` and ``\\b`` are Unicode where RE2's are ASCII, RE2's ``\\s`` leaves out
the vertical tab, Rust reads ``\\<`` as a word boundary, the two may know different Unicode
versions for ``\\pL`` or ``(?i)``, and after a non-empty match Rust skips an empty match at the
same place where ``patterns.UserPattern.replace`` (like Python's ``re.sub``) takes it.

So a pattern is rewritten only when it is made of constructs whose meaning is the same in
both, and the others are spelled out: ``\\d`` becomes ``[0-9]``, ``\\w`` ``[0-9A-Za-z_]``,
``\\s`` ``[\\t\\n\\f\\r ]``, an escaped punctuation character that Rust reads otherwise becomes
the character. A pattern outside that subset (Unicode classes, ``\\b``, flags other than
``(?s)``, hex escapes, POSIX classes), or one that can match the empty text, has no Rust form:
``None``, and the field runs row-wise through RE2 exactly as before.
"""

from __future__ import annotations

import re2

from migrationsapp.engine.patterns import PatternError, Replacement, compile_pattern

# Characters Rust's regex syntax gives a meaning to (escaped when meant literally).
_RUST_META = frozenset("\\.+*?()|[]{}^$#&-~")
_SHORTHAND = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_NEGATED = {"D": "d", "W": "w", "S": "s"}
_CONTROL = {"n": "\\n", "t": "\\t", "r": "\\r", "f": "\\f", "v": "\\v", "a": "\\x07"}
_ANCHORS = {"A": "\\A", "z": "\\z"}


class _NoRustForm(Exception):
    """The pattern uses a construct whose meaning may differ between RE2 and Rust."""


def _literal(char: str) -> str:
    return "\\" + char if char in _RUST_META else char


def _escape(pattern: str, index: int, *, in_class: bool) -> tuple[str, int]:
    """The Rust text of the escape at ``pattern[index]`` (a backslash), and where it ends."""
    following = pattern[index + 1 : index + 2]
    if not following:
        raise _NoRustForm
    if following in _SHORTHAND:
        inner = _SHORTHAND[following]
        return (inner if in_class else f"[{inner}]"), index + 2
    if following in _NEGATED and not in_class:
        return f"[^{_SHORTHAND[_NEGATED[following]]}]", index + 2
    if following in _CONTROL:
        return _CONTROL[following], index + 2
    if following in _ANCHORS and not in_class:
        return _ANCHORS[following], index + 2
    if following.isascii() and not following.isalnum() and following.isprintable():
        return _literal(following), index + 2
    raise _NoRustForm  # \b, \pL, \x41, \Q…\E, \C and the like


def _class(pattern: str, index: int) -> tuple[str, int]:
    """The Rust text of the character class starting at ``pattern[index]`` (``[``)."""
    out = ["["]
    index += 1
    if pattern[index : index + 1] == "^":
        out.append("^")
        index += 1
    first = True
    while index < len(pattern):
        char = pattern[index]
        if char == "]" and not first:
            out.append("]")
            return "".join(out), index + 1
        first = False
        if char == "[" and pattern[index + 1 : index + 2] in (":", "=", "."):
            raise _NoRustForm  # POSIX classes
        if char == "\\":
            text, index = _escape(pattern, index, in_class=True)
            out.append(text)
        elif char == "-" and out[-1] not in ("[", "^") and pattern[index + 1 : index + 2] != "]":
            out.append("-")  # a range between the items on either side
            index += 1
        else:
            out.append(_literal(char) if char.isascii() else char)
            index += 1
    raise _NoRustForm  # an unclosed class (RE2 refused it already)


def _group_start(pattern: str, index: int) -> tuple[str, int]:
    """The Rust text of a group's opening at ``pattern[index]`` (``(``)."""
    if pattern[index + 1 : index + 2] != "?":
        return "(", index + 1
    rest = pattern[index + 2 :]
    if rest.startswith(":"):
        return "(?:", index + 3
    for opening in ("P<", "<"):
        if rest.startswith(opening):
            close = rest.find(">")
            name = rest[len(opening) : close]
            if close == -1 or not (name.isascii() and name.isidentifier()):
                raise _NoRustForm
            return f"(?P<{name}>", index + 2 + close + 1
    if rest.startswith("s)"):
        return "(?s)", index + 4
    if rest.startswith("s:"):
        return "(?s:", index + 4
    raise _NoRustForm  # (?i), (?m), (?U) and combinations


def _repetition(pattern: str, index: int) -> tuple[str, int]:
    close = pattern.find("}", index)
    inner = pattern[index + 1 : close] if close != -1 else ""
    low, comma, high = inner.partition(",")
    if not (low.isascii() and low.isdigit()) or (high and not (high.isascii() and high.isdigit())):
        raise _NoRustForm  # RE2 reads a malformed {…} as literal text; keep it row-wise
    return "{" + inner + "}" if comma or high else "{" + low + "}", close + 1


def rust_pattern(pattern: str) -> str | None:
    """``pattern`` (RE2 syntax, accepted by patterns.compile_pattern) in Rust regex syntax
    with the same matches, or None when that cannot be promised."""
    try:
        compiled = compile_pattern(pattern)
    except PatternError:
        return None
    if compiled._regexp.search(b"") is not None:
        # It can match the empty text: where an empty match follows a non-empty one, Rust
        # and patterns.replace part ways. (Without \b or (?m), a pattern that can match empty
        # anywhere matches the empty text too.)
        return None
    out: list[str] = []
    index = 0
    try:
        while index < len(pattern):
            char = pattern[index]
            if char == "\\":
                text, index = _escape(pattern, index, in_class=False)
            elif char == "[":
                text, index = _class(pattern, index)
            elif char == "(":
                text, index = _group_start(pattern, index)
            elif char == "{":
                text, index = _repetition(pattern, index)
            elif char in "().*+?|^$":
                text, index = char, index + 1
            else:
                text, index = (_literal(char) if char.isascii() else char), index + 1
            out.append(text)
    except _NoRustForm:
        return None
    rust = "".join(out)
    try:  # the rewrite must keep the groups where RE2 has them
        if re2.compile(rust.encode()).groups != compiled.groups:
            return None
    except re2.error:
        return None
    return rust


def rust_replacement(replacement: Replacement, pattern: str) -> str | None:
    """A parsed replacement in the syntax of polars' ``replace_all`` (``${1}``, ``$$``), with
    named groups turned into numbers; None when it names a group the pattern lacks."""
    try:
        pieces = replacement.resolve(compile_pattern(pattern))
    except PatternError:
        return None
    out = []
    for piece in pieces:
        out.append(f"${{{piece}}}" if isinstance(piece, int) else piece.replace("$", "$$"))
    return "".join(out)
