"""Encrypting stored connection passwords with ``DIFFMIG_FERNET_KEYS`` (MultiFernet).

The first key encrypts; every key decrypts, so a key is rotated by putting the new one
first, running ``manage.py rotate_fernet_keys``, then dropping the old one.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from migrationsapp.engine.errors import ConfigurationError


def _fernet() -> MultiFernet:
    keys = list(settings.DIFFMIG_FERNET_KEYS)
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "DIFFMIG_FERNET_KEYS holds a key that is not a Fernet key (urlsafe base64 of 32 bytes)."
        ) from exc


def encrypt_secret(plain: str) -> str:
    if not plain:
        return ""
    return _fernet().encrypt(plain.encode()).decode()


def decrypt_secret(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ConfigurationError(
            "a stored password cannot be decrypted with DIFFMIG_FERNET_KEYS",
            hint="Put the key it was encrypted with back into DIFFMIG_FERNET_KEYS.",
        ) from exc


def rotate_secret(token: str) -> str:
    """Re-encrypt a token under the first key."""
    if not token:
        return ""
    return _fernet().rotate(token.encode()).decode()
