"""Django settings, read from the environment (docs/settings.md).

With nothing set, the embedded default serves: a SQLite control database under ``var/``
(connections' SQLite files under ``var/databases/``, apart from it),
jobs run in-process, development keys (a system check warns), and no debug page. Three modes:

- ``DEBUG`` unset: development. Django's DEBUG is off (an error never shows the debug page,
  which would print settings and decrypted connection URLs), but the development keys serve.
- ``DEBUG=1``: development with Django's debug page, for a developer's own machine.
- ``DEBUG=0``: production. ``SECRET_KEY`` and ``DIFFMIG_FERNET_KEYS`` are required, cookies
  are secure and HTTP redirects to HTTPS.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from diffmig.env import database_from_url, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

# Only an explicit DEBUG=1 shows Django's debug page: unset means development without it.
DEBUG = env_bool("DEBUG", False)
# A system check (migrationsapp.checks) warns when DEBUG is unset: development keys serve.
DIFFMIG_DEBUG_DEFAULTED = env_str("DEBUG") is None
# Production is DEBUG=0 said explicitly: its keys are required and its cookies are secure.
DIFFMIG_PRODUCTION = not DEBUG and not DIFFMIG_DEBUG_DEFAULTED

# Development-only keys: never used in production.
_DEV_SECRET_KEY = "dev-only-insecure-diffmig-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105
_DEV_FERNET_KEY = "ZGV2LW9ubHktZGlmZm1pZy1mZXJuZXQta2V5LTAwMDA="

SECRET_KEY = env_str("SECRET_KEY") or (None if DIFFMIG_PRODUCTION else _DEV_SECRET_KEY)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY is required when DEBUG=0.")

DIFFMIG_FERNET_KEYS = env_list("DIFFMIG_FERNET_KEYS", "") or (
    [] if DIFFMIG_PRODUCTION else [_DEV_FERNET_KEY]
)
if not DIFFMIG_FERNET_KEYS:
    raise ImproperlyConfigured(
        "DIFFMIG_FERNET_KEYS is required when DEBUG=0: comma-separated Fernet keys "
        "(urlsafe base64 of 32 bytes); the first encrypts, all decrypt."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
DIFFMIG_ALLOWED_DB_HOSTS = env_list("DIFFMIG_ALLOWED_DB_HOSTS", "127.0.0.1,localhost")
# SQLite files that connections may open lie under this folder, which must not hold the
# control database's own file (checked below, once DATABASES is known).
DIFFMIG_SQLITE_ROOT = Path(env_str("DIFFMIG_SQLITE_ROOT") or VAR_DIR / "databases").resolve()
if env_str("DIFFMIG_SQLITE_ROOT") is None:
    DIFFMIG_SQLITE_ROOT.mkdir(exist_ok=True)
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
    "axes",
    "csp",
    "migrationsapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
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
# The control database as configured: connections may never reach it, even while Django
# runs on another database (a test database replaces DATABASES' name).
DIFFMIG_CONTROL_DATABASE = {
    key: DATABASES["default"].get(key, "") for key in ("ENGINE", "NAME", "HOST", "PORT")
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3") and (
    Path(DATABASES["default"]["NAME"]).resolve().is_relative_to(DIFFMIG_SQLITE_ROOT)
):
    raise ImproperlyConfigured(
        f"DIFFMIG_SQLITE_ROOT ({DIFFMIG_SQLITE_ROOT}) holds the control database's file "
        f"({DATABASES['default']['NAME']}): point it at a folder of its own, e.g. var/databases/"
    )

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

# Sign-in throttle (django-axes): after DIFFMIG_LOGIN_FAILURE_LIMIT wrong passwords for one
# user from one address, that pair is refused, even with the right password, until
# DIFFMIG_LOGIN_COOLOFF_MINUTES have passed without an attempt. Both sign-in pages go through
# django.contrib.auth's authenticate(), where the first backend checks the lock.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("DIFFMIG_LOGIN_FAILURE_LIMIT", 5)
_cool_off_minutes = env_int("DIFFMIG_LOGIN_COOLOFF_MINUTES", 15)
if AXES_FAILURE_LIMIT < 1 or _cool_off_minutes < 1:
    raise ImproperlyConfigured(
        "DIFFMIG_LOGIN_FAILURE_LIMIT and DIFFMIG_LOGIN_COOLOFF_MINUTES must be at least 1."
    )
AXES_COOLOFF_TIME = timedelta(minutes=_cool_off_minutes)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "migrationsapp.views.lockout.locked_out"

# Content-Security-Policy (django-csp): scripts, styles and everything else only from our own
# origin; no inline script or style (htmx's own indicator style is off: see base.html). The
# RQ dashboard's third-party pages are the one exception (migrationsapp/views/rq_dashboard.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
    }
}

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
# A hash analysis reads its source in key slices of this many rows, each committed with its
# checkpoint: a killed analysis resumes after its last slice (0: the whole table in one).
DIFFMIG_ANALYSIS_SLICE_ROWS = env_int("DIFFMIG_ANALYSIS_SLICE_ROWS", 1_000_000)
# An entity with nothing migrated yet reads its source by key range, with no change set
# (services.key_range_baseline); off: its first baseline writes a change set like any run.
DIFFMIG_KEY_RANGE_BASELINE = env_bool("DIFFMIG_KEY_RANGE_BASELINE", True)
# Workers lost (lease expired) on one entity run before the watchdog fails the entity.
DIFFMIG_MAX_ATTEMPTS = env_int("DIFFMIG_MAX_ATTEMPTS", 3)
DIFFMIG_WATCHDOG_INTERVAL = env_int("DIFFMIG_WATCHDOG_INTERVAL", 10)
# Without REDIS_URL, processes that run an entity's partitions at once: the executor and
# this many less one helpers (services.runs.local_processes; a PostgreSQL control database);
# from 2 on, one more helper reads ahead the entities' sources (services.runs.read_ahead).
DIFFMIG_LOCAL_PROCESSES = env_int("DIFFMIG_LOCAL_PROCESSES", 1)

# Mail (Django's own settings), used by the alerts: a session that fails or completes with
# failed records, a schedule skipped twice in a row (services.alerts).
EMAIL_BACKEND = env_str("EMAIL_BACKEND") or "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env_str("EMAIL_HOST") or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "diffmig@localhost"
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are both on: set one of them")
DIFFMIG_ALERT_EMAILS = env_list("DIFFMIG_ALERT_EMAILS", "")
DIFFMIG_ALERT_WEBHOOK_URL = env_str("DIFFMIG_ALERT_WEBHOOK_URL") or ""
DIFFMIG_ALERT_WEBHOOK_TIMEOUT = env_int("DIFFMIG_ALERT_WEBHOOK_TIMEOUT", 5)
if DIFFMIG_ALERT_WEBHOOK_URL and not DIFFMIG_ALERT_WEBHOOK_URL.lower().startswith(
    ("http://", "https://")
):
    raise ImproperlyConfigured(
        "DIFFMIG_ALERT_WEBHOOK_URL must be an http:// or https:// URL "
        "(the alerts POST JSON to it, e.g. https://hooks.example.org/diffmig)"
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "diffmig": {"handlers": ["console"], "level": "INFO"},
        # Django prints server errors to the console only with DEBUG on; without the debug
        # page the traceback still belongs in the server's log.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

if DIFFMIG_PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DIFFMIG_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    X_FRAME_OPTIONS = "DENY"
