"""Move passwords given as query options (``?password=``, ``?passwd=``) out of stored URLs.

Such a password used to be stored in clear in ``url`` (and shown by the admin and exports);
it now goes encrypted into ``password_encrypted``, unless a password is stored already (that
one was given on purpose, in the user part or the admin's field, and is kept).
"""

from urllib.parse import parse_qsl, unquote, urlencode

from django.db import migrations

PASSWORD_OPTIONS = {"password", "passwd", "pwd"}


def _split(url: str) -> tuple[str, str | None]:
    base, sep, query = url.partition("?")
    if not sep:
        return url, None
    kept, password = [], None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if unquote(key).strip().lower() in PASSWORD_OPTIONS:
            password = value if password is None else password
        else:
            kept.append((key, value))
    if password is None:
        return url, None
    return (f"{base}?{urlencode(kept)}" if kept else base), password


def move_query_passwords(apps, schema_editor):
    from migrationsapp.services.secrets import encrypt_secret

    Connection = apps.get_model("migrationsapp", "Connection")
    for connection in Connection.objects.filter(url__icontains="?").iterator():
        url, password = _split(connection.url)
        if password is None:
            continue
        connection.url = url
        if not connection.password_encrypted and password:
            connection.password_encrypted = encrypt_secret(password)
        connection.save(update_fields=["url", "password_encrypted"])


class Migration(migrations.Migration):
    dependencies = [("migrationsapp", "0005_audit_page_indexes")]

    operations = [migrations.RunPython(move_query_passwords, migrations.RunPython.noop)]
