"""The Flask sample (python/examples/flask_webapp) run for real, for its tests and its benchmark
(bench/flask_webapp_bench.py): the provider with the sample registered, the sample's
environment, the sample under gunicorn, and a browser-less sign-in."""

import json
import os
import subprocess
import sys
import time
import urllib.parse

import requests

from idp import REPO, Idp

SAMPLE = REPO / "python" / "examples" / "flask_webapp"
SCOPES = "api://test-api/read"


def provider(directory, ports, **env):
    """The provider, with the sample registered as client web-app for the given ports."""
    clients = [{
        "client_id": "web-app", "client_secret": "web-secret",
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "redirect_uris": ["http://127.0.0.1:%d/callback" % p for p in ports],
    }]
    path = directory / "clients.json"
    path.write_text(json.dumps(clients))
    return Idp(IDP_CLIENTS_FILE=path, **env)


def origin(idp):
    parts = urllib.parse.urlsplit(idp.issuer)
    return "%s://%s" % (parts.scheme, parts.netloc)


def sample_env(idp, store, sessions, **more):
    """The environment the sample runs in against `idp`, with its tokens in `store`."""
    env = dict(os.environ, REQUESTS_CA_BUNDLE=idp.ca, WEBAPP_AUTHORITY=idp.authority,
               WEBAPP_INSTANCE_DISCOVERY="false", WEBAPP_CLIENT_ID="web-app",
               WEBAPP_CLIENT_SECRET="web-secret", WEBAPP_SCOPES=SCOPES,
               WEBAPP_API_URL=origin(idp) + "/api/me", WEBAPP_STORE=store, WEBAPP_SESSIONS=str(sessions))
    env.update(more)
    return env


class WebApp:
    """The sample under gunicorn (`gunicorn -c gunicorn.conf.py`, as its README runs it), with
    `env` (from `sample_env`); `app` names another application to serve instead."""

    def __init__(self, env, workdir, *, port, workers=4, app=None, pythonpath=None):
        self.url = "http://127.0.0.1:%d" % port
        workdir.mkdir(parents=True, exist_ok=True)
        env = dict(env, WEBAPP_LISTEN="127.0.0.1:%d" % port, WEBAPP_WORKERS=str(workers))
        args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
        if pythonpath:
            args += ["--pythonpath", str(pythonpath)]
        if app:
            args.append(app)
        self.log_path = workdir / "gunicorn.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, cwd=SAMPLE, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, "gunicorn exited:\n" + self.log()
            try:
                if requests.get(self.url + "/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the sample did not start:\n" + self.log()
            time.sleep(0.1)
        # Every worker has booted (each opens the store at import).
        while len(self.workers()) < workers and time.monotonic() < deadline:
            time.sleep(0.1)

    def log(self):
        return self.log_path.read_text()

    def workers(self):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return sorted(int(p) for p in out.split())

    def cpu_seconds(self):
        """CPU time the workers have used so far (every thread of each)."""
        total = 0
        for pid in self.workers():
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def sign_in(self, idp, user):
        """A browser-less sign-in (the provider plays the user's browser): a requests session
        holding the app's session cookie."""
        return sign_in(self.url, idp, user)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def sign_in(url, idp, user):
    """Signs `user` in to the app at `url` as a browser would: /login, the provider's pages,
    its form posted back with the sign-in's own cookie. A requests session holding the app's
    session cookie."""
    browser = requests.Session()
    start = browser.get(url + "/login", params={"login_hint": user}, allow_redirects=False)
    assert start.status_code == 302, start.text
    # A Secure cookie, which requests sends only over https: given by hand, as a browser on
    # 127.0.0.1 sends it.
    flow_cookie = {"__Host-tcflow": start.cookies["__Host-tcflow"]}
    action, fields = idp.browse_form_post(start.headers["location"], user)
    assert action == url + "/callback", action
    done = browser.post(action, data=fields, cookies=flow_cookie, allow_redirects=False)
    assert done.status_code == 302 and done.headers["location"] == "/", done.text
    return browser
