"""Re-encrypt every stored connection password under the first DIFFMIG_FERNET_KEYS key."""

from django.core.management.base import BaseCommand
from django.db import transaction

from migrationsapp.services.connections import rotate_connection_passwords


class Command(BaseCommand):
    help = (
        "Re-encrypt stored connection passwords under the first key of DIFFMIG_FERNET_KEYS. "
        "Example: DIFFMIG_FERNET_KEYS=new,old python manage.py rotate_fernet_keys"
    )

    def handle(self, *args, **options):
        with transaction.atomic():
            count = rotate_connection_passwords()
        self.stdout.write(f"re-encrypted {count} connection password(s) under the first key")
