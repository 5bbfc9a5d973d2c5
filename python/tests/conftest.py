"""Shared helpers for the tokencache Python tests."""

import base64
import json
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"


def b64(obj):
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(claims):
    return "%s.%s.c2ln" % (b64({"alg": "none"}), b64(claims))


def user_event(uid, *, client_id="cid", tenant="t", scope=("User.Read",), now=None, n=0,
               environment="login.example.com", expires_in=3600, foci=None, refresh_in=None):
    """An auth-code token event as MSAL passes it to TokenCache.add."""
    response = {
        "token_type": "Bearer",
        "scope": " ".join(scope),
        "expires_in": expires_in,
        "access_token": "at-%s-%d" % (uid, n),
        "refresh_token": "rt-%s-%d" % (uid, n),
        "id_token": jwt({"sub": "sub-" + uid, "oid": uid, "tid": tenant, "aud": client_id,
                         "iat": 1700000000, "nbf": 1700000000, "exp": 4102444800,
                         "preferred_username": uid + "@example.com",
                         "iss": "https://%s/%s/v2.0" % (environment, tenant)}),
        "client_info": b64({"uid": uid, "utid": tenant}),
    }
    if foci:
        response["foci"] = foci
    if refresh_in:
        response["refresh_in"] = refresh_in
    return {
        "client_id": client_id,
        "scope": list(scope),
        "token_endpoint": "https://%s/%s/oauth2/v2.0/token" % (environment, tenant),
        "grant_type": "authorization_code",
        "response": response,
        "params": {},
        "data": {"scope": list(scope), "claims": None},
        "environment": environment,
    }


def app_event(tenant, *, client_id="daemon", scope=("https://graph.example.com/.default",), n=0):
    return {
        "client_id": client_id,
        "scope": list(scope),
        "token_endpoint": "https://login.example.com/%s/oauth2/v2.0/token" % tenant,
        "grant_type": "client_credentials",
        "response": {"token_type": "Bearer", "expires_in": 3600, "access_token": "app-%s-%d" % (tenant, n)},
        "params": {},
        "data": {"scope": list(scope)},
        "environment": "login.example.com",
    }


@pytest.fixture
def scenarios():
    with open(GOLDEN / "scenarios.json") as f:
        return json.load(f)
