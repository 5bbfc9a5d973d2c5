"""The Flask sample written the way the seed page describes, for the benchmark: one
``msal.SerializableTokenCache`` per user, loaded from Redis with redis-py before each request and
saved back after it when MSAL changed it. Everything else is the sample's own code (routes,
sessions, MSAL calls); only where the tokens live differs.

    gunicorn -c gunicorn.conf.py --pythonpath <repo>/bench 'flask_recipe:create_app()'

with ``BENCH_RECIPE_REDIS=redis://...`` and the sample's ``WEBAPP_*`` variables.
"""

import os
from typing import Optional

import msal
import redis
import webapp

KEY = "msal-recipe:%s"
LIFETIME = 90 * 24 * 3600  # as long as a tokencache user partition lives by default


class RecipeCaches:
    """The page's recipe, as a :class:`webapp.TokenCaches`."""

    def __init__(self, url: str) -> None:
        # redis-py's pool makes new connections in a forked worker (it checks the process id).
        self.redis = redis.Redis.from_url(url)

    def open(self, home_account_id: Optional[str]) -> msal.SerializableTokenCache:
        cache = msal.SerializableTokenCache()
        if home_account_id:
            state = self.redis.get(KEY % home_account_id)
            if state:
                cache.deserialize(state.decode("utf-8"))
        return cache

    def done(self, cache: msal.SerializableTokenCache, home_account_id: Optional[str]) -> None:
        if home_account_id and cache.has_state_changed:
            self.redis.set(KEY % home_account_id, cache.serialize(), ex=LIFETIME)

    def remove(self, home_account_id: str) -> None:
        self.redis.delete(KEY % home_account_id)


def create_app():
    return webapp.create_app(webapp.Settings.from_env(), RecipeCaches(os.environ["BENCH_RECIPE_REDIS"]))
