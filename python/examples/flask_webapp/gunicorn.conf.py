# gunicorn settings for the sample: `gunicorn -c gunicorn.conf.py` in this directory.
# Four worker processes share the token store (and the session files): a user signed in through
# one is served silently by the others, and an expiring token is refreshed by one of them.
import os

wsgi_app = "webapp:create_app()"
bind = os.environ.get("WEBAPP_LISTEN", "127.0.0.1:5000")
workers = int(os.environ.get("WEBAPP_WORKERS", "4"))
# Threads per worker (gunicorn's gthread worker when above 1); the app is thread-safe.
threads = int(os.environ.get("WEBAPP_THREADS", "1"))
accesslog = os.environ.get("WEBAPP_ACCESS_LOG")  # "-" for stdout; off by default
# gunicorn's control socket (one per user, in ~/.gunicorn) is not needed to run the sample, and
# two instances on one machine would compete for it.
control_socket_disable = True
