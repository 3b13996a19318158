"""Which machine a URL's host is: the allow-list ``DIFFMIG_ALLOWED_DB_HOSTS`` (a host, or a
host pinned to a port), and whether two host names are one machine (``localhost``,
``127.0.0.1``, ``::1`` and this machine's own names are one; names are compared by the
addresses they resolve to)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

from migrationsapp.engine.errors import ConfigurationError

_THIS_MACHINE = "this machine"


def _strip_host(host: str) -> str:
    return host.strip().lower().strip("[]").rstrip(".")


def _allowed_entry(entry: str) -> tuple[str, int | None]:
    """``db.internal`` -> (host, any port); ``db.internal:5432`` / ``[::1]:5432`` -> pinned."""
    entry = entry.strip()
    host, port = entry, ""
    if entry.startswith("["):
        host, _, after = entry[1:].partition("]")
        port = after[1:] if after.startswith(":") else ""
    elif entry.count(":") == 1:
        host, port = entry.split(":", 1)
    if port and not port.isdigit():
        raise ConfigurationError(
            f"DIFFMIG_ALLOWED_DB_HOSTS entry {entry!r} is not a host or host:port"
        )
    return _strip_host(host), int(port) if port else None


def check_allowed_host(host: str, port: int, allowed_hosts: Sequence[str], shown: str) -> None:
    """Refuse ``host``:``port`` (of the URL ``shown``) unless ``DIFFMIG_ALLOWED_DB_HOSTS`` lists
    it (raises ConfigurationError)."""
    entries = [_allowed_entry(e) for e in allowed_hosts if e.strip()]
    name = _strip_host(host)
    if any(name == h and (p is None or p == port) for h, p in entries):
        return
    listed = ", ".join(e.strip() for e in allowed_hosts if e.strip()) or "empty"
    if any(name == h for h, _ in entries):
        raise ConfigurationError(
            f"port {port} of host {host!r} in {shown} is refused: DIFFMIG_ALLOWED_DB_HOSTS "
            f"({listed}) allows that host on other ports only"
        )
    raise ConfigurationError(
        f"host {host!r} in {shown} is refused: it is not in DIFFMIG_ALLOWED_DB_HOSTS ({listed})"
    )


def _this_machine() -> frozenset[str]:
    """The addresses this machine's own name resolves to (cheap: usually /etc/hosts)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return frozenset()
    return frozenset(str(info[4][0]).split("%")[0] for info in infos)


def _address_kind(address: str, local: frozenset[str]) -> str:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_unspecified or str(ip) in local:
        return _THIS_MACHINE
    return str(ip)


def host_addresses(host: str) -> frozenset[str]:
    """What ``host`` stands for: this machine, or its name and the addresses it resolves to."""
    name = _strip_host(host)
    if not name or name.startswith("/") or name == "localhost" or name.endswith(".localhost"):
        return frozenset({_THIS_MACHINE})
    local = _this_machine()
    try:
        return frozenset({_address_kind(name, local)})
    except ValueError:
        pass  # a name, not an address
    found = {name}
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return frozenset(found)
    for info in infos:
        found.add(_address_kind(str(info[4][0]).split("%")[0], local))
    return frozenset(found)


def same_host(a: str, b: str) -> bool:
    """Whether the hosts ``a`` and ``b`` may be one machine."""
    return bool(host_addresses(a) & host_addresses(b))
