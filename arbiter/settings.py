"""Arbiter settings, read from the environment.

Defaults give the embedded set-up a new user gets from the README: SQLite under
var/ and Celery over kombu's filesystem transport (no server needed).
Production and CI set DATABASE_URL and REDIS_URL.
"""

import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

# Strict, as healthchecks.io reads its environment: a typo (SECURE_SSL_REDIRECT=ture) stops the start with the
# variable's name instead of silently meaning False.
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


def envbool(name: str, default: str) -> bool:
    value = os.getenv(name, default).strip().lower()
    if value not in TRUE_WORDS + FALSE_WORDS:
        raise ImproperlyConfigured(f"{name}={value!r}: expected one of {', '.join(TRUE_WORDS + FALSE_WORDS[:-1])}.")
    return value in TRUE_WORDS


def envint(name: str, default: str) -> int:
    value = os.getenv(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a whole number.") from None


def envfloat(name: str, default: str) -> float:
    value = os.getenv(name, default)
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a number.") from None


def envlist(name: str, default: str) -> list[str]:
    return [value.strip() for value in os.getenv(name, default).split(",") if value.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.getenv("ARBITER_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Off unless asked for: a DEBUG error page shows settings, SQL and source to whoever hits an error.
# bin/run and the tests turn it on.
DEBUG = envbool("DEBUG", "False")
# Sessions, CSRF tokens and export pseudonyms are keyed on it, so a known key is only
# acceptable on a developer's machine (DEBUG on).
DEVELOPMENT_SECRET_KEY = "dev-only-insecure-secret-key"
SECRET_KEY_MIN_LENGTH = 32
_NEW_KEY_HINT = (
    "Set SECRET_KEY to a long random string (for example the output of "
    "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), or set DEBUG=true for development."
)
SECRET_KEY = os.getenv("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(f"SECRET_KEY is not set. {_NEW_KEY_HINT}")
    SECRET_KEY = DEVELOPMENT_SECRET_KEY
elif not DEBUG and (SECRET_KEY == DEVELOPMENT_SECRET_KEY or SECRET_KEY.startswith("django-insecure-")):
    # Published in this repository (or Django's template): anyone could forge sessions with it.
    raise ImproperlyConfigured(f"SECRET_KEY is a known development key, not a secret. {_NEW_KEY_HINT}")
elif not DEBUG and len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH:
    raise ImproperlyConfigured(
        f"SECRET_KEY is {len(SECRET_KEY)} characters long; at least {SECRET_KEY_MIN_LENGTH} are needed with "
        f"DEBUG off. {_NEW_KEY_HINT}"
    )
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

# HTTPS. Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER=true, so that Django trusts the
# proxy's X-Forwarded-Proto (the proxy must set it, overwriting any value a client sent).
if envbool("SECURE_PROXY_SSL_HEADER", "False"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "False")
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "0")
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", "False")
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "False")
# Secure cookies unless DEBUG: a production login never sends its session over plain HTTP. ARBITER_BENCH_PLAIN_HTTP=true
# drops the Secure flags for a load benchmark against a production-configured server on loopback
# (bench/load_annotators.py); `check --deploy` then warns (security.W012, W016), so it cannot pass into a deployment.
BENCH_PLAIN_HTTP = envbool("ARBITER_BENCH_PLAIN_HTTP", "False")
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", str(not DEBUG and not BENCH_PLAIN_HTTP))
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", str(not DEBUG and not BENCH_PLAIN_HTTP))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "template_partials",
    "django_htmx",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's JS/CSS served from our static files, not a CDN
    "django_filters",
    "axes",
    "csp",
    "accounts",
    "runs",
    "annotate",
    "rewardmodel",
    "policy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a lockout flagged during authentication into its response.
    "axes.middleware.AxesMiddleware",
]
if DEBUG:
    # The styled 404 page with DEBUG on too (bin/run): Django's own lists every URL pattern instead.
    MIDDLEWARE.insert(MIDDLEWARE.index("axes.middleware.AxesMiddleware"), "arbiter.middleware.StyledNotFoundMiddleware")

ROOT_URLCONF = "arbiter.urls"

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
                "runs.permissions.staff_context",  # who is staff: one rule for views and templates
            ],
            # `shown`: user-chosen text with its bidirectional controls visible, in every template.
            "builtins": ["annotate.templatetags.display"],
        },
    },
]

WSGI_APPLICATION = "arbiter.wsgi.application"

# PostgreSQL connections. By default a process keeps its connection for CONN_MAX_AGE seconds (0: a new connection per
# request), checked before reuse: measured faster than a connection per request (docs/benchmarks.md, "Web tier").
# DB_POOL=true uses Django's built-in psycopg pool instead (needs psycopg[pool]; DB_POOL_MIN_SIZE..DB_POOL_MAX_SIZE
# connections per process): worth it with threaded workers, not with gunicorn's sync ones.
DB_POOL = envbool("DB_POOL", "False")
CONN_MAX_AGE = envint("CONN_MAX_AGE", "60")
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'arbiter.sqlite3'}", conn_max_age=CONN_MAX_AGE, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql") and DB_POOL:
    # The pool and persistent connections exclude each other (Django refuses both).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": envint("DB_POOL_MIN_SIZE", "2"),
        "max_size": envint("DB_POOL_MAX_SIZE", "8"),
        "timeout": envfloat("DB_POOL_TIMEOUT_SECONDS", "10"),
    }
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # IMMEDIATE takes the write lock when a transaction starts, so two annotators
    # asking for work at once are serialised instead of failing with "locked".
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not :memory:, so a Celery worker process started by a test sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out account or address before the password is checked.
AUTHENTICATION_BACKENDS = [
    "accounts.backends.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

MEDIA_ROOT = VAR_DIR / "media"
# Trained models and checkpoints live here, one folder per run. With ARTIFACT_STORAGE_URL set, this is only the
# worker's scratch space: a finished folder is uploaded there (runs/storage.py).
ARTIFACTS_DIR = VAR_DIR / "artifacts"
# An fsspec URL (s3://bucket/prefix with s3fs installed, file:///shared/artifacts, ...) where finished run folders
# go, so that workers on other machines write where the web app reads. Unset: they stay in ARTIFACTS_DIR.
ARTIFACT_STORAGE_URL = os.getenv("ARTIFACT_STORAGE_URL", "")
# Local copies of stored models that this machine loads (scoring, a policy's reward model), fetched once each.
ARTIFACT_CACHE_DIR = Path(os.getenv("ARTIFACT_CACHE_DIR", str(VAR_DIR / "artifact-cache")))
# Folders whose models users may name (backbone, base model) besides ARTIFACTS_DIR and VAR_DIR / "models":
# ARBITER_MODEL_ROOTS, separated like PATH. Anything else must be a hub id already in the local cache.
MODEL_ROOTS = [Path(p) for p in os.getenv("ARBITER_MODEL_ROOTS", "").split(os.pathsep) if p]

# Celery: Redis when REDIS_URL is set, otherwise a broker on the filesystem.
REDIS_URL = os.getenv("REDIS_URL", "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
else:
    _broker_dir = VAR_DIR / "celery-broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_TASK_IGNORE_RESULT = True  # progress lives in our own rows
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_ROUTES = {
    # Scoring is inference, minutes at most: the light worker (queue celery) does it, never behind a training run.
    "rewardmodel.tasks.score_batch_items": {"queue": "celery"},
    "rewardmodel.tasks.score_judged_items": {"queue": "celery"},
    "rewardmodel.tasks.*": {"queue": "gpu"},
    "policy.tasks.*": {"queue": "gpu"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The Celery queues a run may be sent to, one per kind of machine (e.g. "gpu,gpu-80g"); the first is the default.
# Workers pick theirs with -Q (README, "Production").
RUN_QUEUES = envlist("RUN_QUEUES", "gpu")
_bad_queues = [name for name in RUN_QUEUES if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}", name)]
if not RUN_QUEUES or _bad_queues:
    raise ImproperlyConfigured(
        f"RUN_QUEUES must be comma-separated queue names (letters, digits, _ . : -), not {os.getenv('RUN_QUEUES')!r}."
    )
# A running trainer beats from a thread every RUN_HEARTBEAT_SECONDS, however long its steps; a run silent for
# RUN_STALE_MINUTES has lost its worker: the periodic check (below), a redelivered task or a cancel ends it.
RUN_HEARTBEAT_SECONDS = envfloat("RUN_HEARTBEAT_SECONDS", "30")
RUN_STALE_MINUTES = envfloat("RUN_STALE_MINUTES", "3")
# The run watchdog (runs.watchdog): every RUN_WATCH_SECONDS via Celery beat, at worker start-up, and on every
# dashboard poll of a running run. It re-sends queued runs never handed to the broker, or handed over more than
# RUN_REDISPATCH_MINUTES ago and still queued, and fails runs that lost their worker (resuming them from their
# last checkpoint when RUN_AUTO_RESUME is on, at most RUN_MAX_AUTO_RESUMES times per run).
RUN_WATCH_SECONDS = envfloat("RUN_WATCH_SECONDS", "60")
# Web requests that read runs (the runs API, run pages) run the lost-worker check too, at most this often per web
# process: a dead worker is noticed with no worker left to run beat's task and no run page open.
RUN_WEB_WATCH_SECONDS = envfloat("RUN_WEB_WATCH_SECONDS", "10")
RUN_REDISPATCH_MINUTES = envfloat("RUN_REDISPATCH_MINUTES", "10")
RUN_AUTO_RESUME = envbool("RUN_AUTO_RESUME", "false")
RUN_MAX_AUTO_RESUMES = envint("RUN_MAX_AUTO_RESUMES", "3")
CELERY_BEAT_SCHEDULE = {
    "watch-training-runs": {"task": "runs.tasks.watch_training_runs", "schedule": RUN_WATCH_SECONDS},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
if REDIS_URL:
    # How long Redis keeps a delivered, unacknowledged message before handing it to another worker. It need
    # not cover a whole run: a redelivery of a run still training finds it claimed and heartbeating and does
    # nothing (claim is a conditional UPDATE). Cover the longest step instead, so a redelivery never arrives
    # before the heartbeat of a dead worker has gone stale; the watchdog, not redelivery, ends dead runs.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("RUN_VISIBILITY_TIMEOUT_SECONDS", "600")}

# Annotation
# An unsubmitted HIT with no activity for this long gives its unjudged items back.
HIT_TIMEOUT_MINUTES = envint("HIT_TIMEOUT_MINUTES", "60")
# The most time one annotator's judgment of one item may record, however often the page reports time.
MAX_ITEM_SECONDS = envint("MAX_ITEM_SECONDS", "1800")
IMPORT_USERNAME = os.getenv("IMPORT_USERNAME", "import")

# Login throttling (django-axes), on the login form and on POST /api/auth/token/ alike: after
# LOGIN_FAILURE_LIMIT failed attempts for one username from one address, or LOGIN_WIDE_FAILURE_LIMIT for one username
# from anywhere or from one address for any username (many people share an address behind a NAT), every attempt (a
# right password included) is refused until LOGIN_LOCKOUT_MINUTES have passed without another failure.
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", "10")
LOGIN_WIDE_FAILURE_LIMIT = envint("LOGIN_WIDE_FAILURE_LIMIT", "100")
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", "15"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address", "username"]
AXES_HANDLER = "accounts.lockout.PairFirstHandler"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
# Addresses come from REMOTE_ADDR: a client could set X-Forwarded-For to anything. Behind N reverse
# proxies that each append to X-Forwarded-For, set TRUSTED_PROXY_COUNT=N.
TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", "0")
if TRUSTED_PROXY_COUNT:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
    AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT
else:
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]

# Content-Security-Policy on every response: scripts and styles only from our own static files, so
# markdown that slipped through sanitising could still not run. Swagger UI's assets are static files too.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],  # data: for the empty favicon and Swagger UI's icons
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

REST_FRAMEWORK = {
    # Token first: a request without valid credentials gets 401 with "WWW-Authenticate: Token".
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "arbiter.schema.ArbiterAutoSchema",  # documents the errors every endpoint gives
    "DEFAULT_FILTER_BACKENDS": ["arbiter.filters.StrictFilterBackend"],  # 400 for a value it cannot read
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # JSON only outside DEBUG: the browsable API's inline scripts and styles break the Content-Security-Policy.
    # The Swagger UI (/api/docs/) is the way to explore the API in a browser.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Arbiter API",
    "DESCRIPTION": "Pairwise preference annotation, reward models and REINFORCE runs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One schema enum per choice set (the scale is both `rating` and `gold`; two models have a `kind`).
    "ENUM_NAME_OVERRIDES": {
        "RatingEnum": "annotate.models.Rating",
        "PolicyRunKindEnum": "policy.models.PolicyRun.Kind",
        "PolicySampleKindEnum": "policy.models.PolicySample.Kind",
        "ImportJobStatusEnum": "annotate.models.ImportJob.Status",
        "BatchKindEnum": "annotate.models.Batch.Kind",
        "RunStatusEnum": "runs.models.RunStatus",
    },
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "arbiter.schema.any_of_for_roles"],
}

# Models load offline; nothing may download at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"expected_denials": {"()": "arbiter.logging.ExpectedDenialFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "WARNING")},
    # A 403 for a non-staff user is expected: one INFO line, no traceback (see the filter).
    "loggers": {"django.request": {"filters": ["expected_denials"]}},
}

# Imports (command, admin upload and API alike). A file larger than IMPORT_MAX_BYTES (unpacked, when gzipped) or
# with more than IMPORT_MAX_ROWS records is refused; a text field longer than ITEM_MAX_CHARS is refused with its
# line and field. Uploads that unpack to more than IMPORT_BACKGROUND_BYTES are imported by a Celery task (an
# ImportJob with a progress page) instead of inside the request.
IMPORT_MAX_BYTES = envint("IMPORT_MAX_BYTES", str(256 * 1024 * 1024))
IMPORT_MAX_ROWS = envint("IMPORT_MAX_ROWS", "500000")
ITEM_MAX_CHARS = envint("ITEM_MAX_CHARS", "100000")
IMPORT_BACKGROUND_BYTES = envint("IMPORT_BACKGROUND_BYTES", str(2 * 1024 * 1024))
# Uploads go to temporary files on disk past this size, never whole into a web process's memory; the upload
# handler refuses one over IMPORT_MAX_BYTES as it arrives.
FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
FILE_UPLOAD_HANDLERS = [
    "annotate.uploads.SizeLimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Request bodies read into memory (forms, JSON for every API endpoint but the item import, which streams its body
# to disk under IMPORT_MAX_BYTES): Django's default, stated.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", str(2_621_440))
# Uploaded files waiting for their import task, one per ImportJob; removed when the job ends.
IMPORT_DIR = VAR_DIR / "imports"
