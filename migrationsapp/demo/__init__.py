"""The demo data sets: small, messy legacy databases with the ground truth of their migration.

``clinic`` is the one the integration tests and ``python manage.py demo`` use. Nothing in
this package imports Django.
"""
