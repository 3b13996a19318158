"""Django settings, read from the environment (CONTRACT.md §1).

With nothing set, the embedded default serves: a SQLite control database under ``var/``,
jobs run in-process, DEBUG on with a development key. Production sets ``DEBUG=0`` and must
then give ``SECRET_KEY`` and ``DIFFMIG_FERNET_KEYS``.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from diffmig.env import database_from_url, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

DEBUG = env_bool("DEBUG", True)
# A system check (migrationsapp.checks) warns when DEBUG is on only because it is unset.
DIFFMIG_DEBUG_DEFAULTED = env_str("DEBUG") is None

# Development-only keys: used only while DEBUG is on.
_DEV_SECRET_KEY = "dev-only-insecure-diffmig-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105
_DEV_FERNET_KEY = "ZGV2LW9ubHktZGlmZm1pZy1mZXJuZXQta2V5LTAwMDA="

SECRET_KEY = env_str("SECRET_KEY") or (_DEV_SECRET_KEY if DEBUG else None)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY is required when DEBUG=0.")

DIFFMIG_FERNET_KEYS = env_list("DIFFMIG_FERNET_KEYS", "") or ([_DEV_FERNET_KEY] if DEBUG else [])
if not DIFFMIG_FERNET_KEYS:
    raise ImproperlyConfigured(
        "DIFFMIG_FERNET_KEYS is required when DEBUG=0: comma-separated Fernet keys "
        "(urlsafe base64 of 32 bytes); the first encrypts, all decrypt."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
DIFFMIG_ALLOWED_DB_HOSTS = env_list("DIFFMIG_ALLOWED_DB_HOSTS", "127.0.0.1,localhost")
DIFFMIG_SQLITE_ROOT = Path(env_str("DIFFMIG_SQLITE_ROOT") or VAR_DIR).resolve()
DIFFMIG_LEASE_TIMEOUT = env_int("DIFFMIG_LEASE_TIMEOUT", 60)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_rq",
    "migrationsapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "diffmig.urls"
WSGI_APPLICATION = "diffmig.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL") or f"sqlite:///{(VAR_DIR / 'diffmig.sqlite3').as_posix()}",
        base_dir=BASE_DIR,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Jobs: with REDIS_URL, runs are RQ jobs; without it they execute in-process.
REDIS_URL = env_str("REDIS_URL") or None
DIFFMIG_QUEUES = ["diffmig", "diffmig_low"]
RQ_QUEUES = {
    name: {"URL": REDIS_URL or "redis://127.0.0.1:6379/0", "DEFAULT_TIMEOUT": 600}
    for name in DIFFMIG_QUEUES
}
RQ_SHOW_ADMIN_LINK = False
# A job runs one unit: at most this many batches of one entity, then it enqueues the rest.
DIFFMIG_UNIT_BATCHES = env_int("DIFFMIG_UNIT_BATCHES", 20)
DIFFMIG_JOB_TIMEOUT = env_int("DIFFMIG_JOB_TIMEOUT", 600)
# An entity with more upserts than this is split into key ranges (partitions) that several
# workers run at once, each with its own checkpoint and lease.
DIFFMIG_PARTITION_ROWS = env_int("DIFFMIG_PARTITION_ROWS", 50_000)
# Workers lost (lease expired) on one entity run before the watchdog fails the entity.
DIFFMIG_MAX_ATTEMPTS = env_int("DIFFMIG_MAX_ATTEMPTS", 3)
DIFFMIG_WATCHDOG_INTERVAL = env_int("DIFFMIG_WATCHDOG_INTERVAL", 10)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"diffmig": {"handlers": ["console"], "level": "INFO"}},
}

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DIFFMIG_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    X_FRAME_OPTIONS = "DENY"
