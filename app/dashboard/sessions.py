"""The dashboard's session: a cookie holding the signed-in key's id and a CSRF token, signed with HMAC-SHA256.

The cookie is HttpOnly, SameSite=Strict, Secure on https, and scoped to /ui, so the browser never sends it to
the JSON API (which reads only `Authorization` headers anyway). The signing secret is made once per data
folder (mode 0600), so every server process on that folder accepts the same sessions. The key named by a
session is looked up on every request: revoking it ends the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from app.settings import Settings

COOKIE_NAME = "dptune_session"
# The sign-in form's own CSRF token lives in another cookie: a SameSite=Strict session cookie is not sent when
# one arrives from another site's link, and showing the form then must not overwrite (sign out) the session.
SIGN_IN_COOKIE = "dptune_sign_in"
COOKIE_PATH = "/ui"
MAX_AGE_SECONDS = 12 * 3600
SECRET_FILE = "dashboard-secret"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class SessionData:
    csrf: str
    key_id: str | None = None  # None: not signed in (the sign-in form's own CSRF token only)
    issued_at: int = 0


def session_secret(settings: Settings) -> bytes:
    """The data folder's signing secret, made on first use with mode 0600. It is written whole to a temp file
    and linked into place, so of two processes starting at once one wins and both read the same full secret."""
    path: Path = settings.data_dir / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = path.with_name(f".{SECRET_FILE}.{secrets.token_hex(8)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            os.link(temp, path)
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
    return path.read_text().strip().encode()


def new_session(key_id: str | None = None) -> SessionData:
    """A fresh session (and CSRF token): made at sign-in, so a token seen before signing in is worthless after."""
    return SessionData(csrf=secrets.token_urlsafe(32), key_id=key_id, issued_at=int(time.time()))


def _sign(secret: bytes, payload: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(secret, payload.encode(), hashlib.sha256).digest()).decode().rstrip("=")


def encode(secret: bytes, data: SessionData) -> str:
    body = json.dumps({"csrf": data.csrf, "key": data.key_id, "iat": data.issued_at}, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
    return f"{payload}.{_sign(secret, payload)}"


def decode(secret: bytes, value: str, now: float | None = None) -> SessionData | None:
    """The session of a cookie value, or None when it is forged, malformed or older than MAX_AGE_SECONDS."""
    payload, _, signature = value.partition(".")
    if not payload or not hmac.compare_digest(signature.encode(), _sign(secret, payload).encode()):
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        data = SessionData(csrf=str(body["csrf"]), key_id=body["key"], issued_at=int(body["iat"]))
    except (ValueError, KeyError, TypeError):
        return None
    age = (time.time() if now is None else now) - data.issued_at
    if not data.csrf or not 0 <= age <= MAX_AGE_SECONDS:
        return None
    return data


def read(request: Request, secret: bytes, name: str = COOKIE_NAME) -> SessionData | None:
    value = request.cookies.get(name)
    return decode(secret, value) if value else None


def write(response: Response, request: Request, secret: bytes, data: SessionData, name: str = COOKIE_NAME) -> None:
    response.set_cookie(
        name,
        encode(secret, data),
        max_age=MAX_AGE_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear(response: Response, request: Request, name: str = COOKIE_NAME) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def csrf_matches(data: SessionData | None, sent: str | None) -> bool:
    return data is not None and bool(sent) and hmac.compare_digest(data.csrf.encode(), str(sent).encode())
