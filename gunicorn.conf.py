"""gunicorn's configuration for Arbiter's web tier: `gunicorn -c gunicorn.conf.py arbiter.wsgi` (or `bin/serve`).

Every value can be overridden from the environment (WEB_*), so one file serves a laptop and a 64-core box.
"""

import multiprocessing
import os

# Where to listen: behind the reverse proxy that terminates HTTPS, on loopback or a private address.
bind = os.getenv("WEB_BIND", "127.0.0.1:8000")
# Sync workers, one per core plus one: a request is CPU (Django, DRF) and short database waits, measured in
# docs/benchmarks.md; more processes than cores only add context switches. WEB_WORKERS overrides it.
workers = int(os.getenv("WEB_WORKERS", str(multiprocessing.cpu_count() + 1)))
worker_class = "sync"
# Streamed exports and model downloads (a zip of a 500 MB model, a parquet of a million judgments) write for minutes:
# a sync worker's timeout is the time without a sign of life from it, and a streaming response signs with every chunk
# it sends, but a slow first chunk (a big export's query) must not be killed either.
timeout = int(os.getenv("WEB_TIMEOUT_SECONDS", "300"))
graceful_timeout = int(os.getenv("WEB_GRACEFUL_TIMEOUT_SECONDS", "60"))
keepalive = int(os.getenv("WEB_KEEPALIVE_SECONDS", "5"))
# Recycle a worker after this many requests (with jitter, so they do not all restart at once): a slow leak stays small.
max_requests = int(os.getenv("WEB_MAX_REQUESTS", "5000"))
max_requests_jitter = int(os.getenv("WEB_MAX_REQUESTS_JITTER", "500"))
# Access log to stdout ("-") in the combined format plus the request time in microseconds; WEB_ACCESS_LOG="" turns it
# off (the load benchmark does, to measure the app rather than the terminal).
accesslog = os.getenv("WEB_ACCESS_LOG", "-") or None
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)sus'
errorlog = "-"
loglevel = os.getenv("WEB_LOG_LEVEL", "info")
# gunicorn's control socket (for `gunicornc`) defaults to one path per user ($XDG_RUNTIME_DIR or ~/.gunicorn): two
# instances on one host would share it, and stopping one removes it for the other. One per instance, under its
# ARBITER_VAR_DIR (each checkout or deployment has its own); WEB_CONTROL_SOCKET="" turns it off.
_var_dir = os.getenv("ARBITER_VAR_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "var"))
control_socket = os.getenv("WEB_CONTROL_SOCKET", os.path.join(_var_dir, "gunicorn.ctl"))
control_socket_disable = not control_socket
if control_socket_disable:
    control_socket = os.path.join(_var_dir, "gunicorn.ctl")  # unused; gunicorn validates it as a string
# The app is imported once in the master and forked: faster starts, shared pages. Database connections (and psycopg
# pools) are opened lazily in each worker, after the fork, so none is shared across processes.
preload_app = True
# Trust X-Forwarded-* only from the proxy on this machine (Django's SECURE_PROXY_SSL_HEADER decides about HTTPS).
forwarded_allow_ips = os.getenv("WEB_FORWARDED_ALLOW_IPS", "127.0.0.1")
