"""What stands in front of the UI: the login, cross-site request checks and safe headers.

- `--ui-auth user:pass` (or a file of such lines) puts a login page in front of every page,
  JSON endpoint and the websocket. The session is Flask's signed cookie; its secret key is
  made once and kept in `USER_DATA_DIR/cache/` (mode 0600), so logins survive restarts.
  A session also carries a fingerprint of the user's password, so changing it logs out
  every old session.
- Requests that change something (and the websocket handshake) must come from the UI's own
  origin: a page elsewhere cannot drive the UI through the user's browser (CSRF).
- Management actions (views marked with `management`: loading models, the settings,
  extensions' parameters, LocalDocs folders) need the login, or else come from this machine
  (modules/serving/access.py says what counts as this machine).
- (Requests addressed to other host names, DNS rebinding, are refused app-wide by the
  serving layer's Host guard, before they reach the UI.)
- Every UI response carries a strict Content-Security-Policy: scripts only from our own
  static files, no inline script, no plugins, no framing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import Response, current_app, redirect, request, session, url_for

from modules.errors import Forbidden, Unauthorized
from modules.keyfile import read_or_create
from modules.serving.access import ACCESS_ATTRIBUTE, require_local_management, same_origin
from modules.settings import Settings

log = logging.getLogger(__name__)

SECRET_FILE = "ui-secret.key"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
OPEN_ENDPOINTS = {"web.login", "web.static", "web.login_submit"}


@dataclass(frozen=True)
class Guard:
    credentials: dict[str, str]  # user -> password; empty: no login
    secret: bytes

    @property
    def login_required(self) -> bool:
        return bool(self.credentials)

    def fingerprint(self, user: str) -> str:
        """Ties a session to the password it was opened with."""
        password = self.credentials.get(user, "")
        message = f"{user}\0{password}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:32]

    def check_password(self, user: str, password: str) -> bool:
        """Constant-time in the password, and the same work whether or not the user exists."""
        expected = self.credentials.get(user)
        wanted = hashlib.sha256((expected or "\0 no such user").encode()).digest()
        given = hashlib.sha256(password.encode()).digest()
        return hmac.compare_digest(wanted, given) and expected is not None

    def logged_in_user(self) -> str | None:
        user = session.get("user")
        if not isinstance(user, str) or user not in self.credentials:
            return None
        key = str(session.get("key", ""))
        return user if hmac.compare_digest(key, self.fingerprint(user)) else None

    def log_in(self, user: str) -> None:
        session.clear()
        session["user"] = user
        session["key"] = self.fingerprint(user)
        session.permanent = True


def make_guard(settings: Settings) -> Guard:
    credentials = settings.ui_credentials
    secret = load_secret(settings.user_data_dir / "cache") if credentials else b""
    return Guard(credentials=credentials, secret=secret)


def load_secret(folder: Path) -> bytes:
    """The session key: made once, kept readable by this user only."""
    return read_or_create(folder / SECRET_FILE, lambda: secrets.token_hex(32)).encode()


# --- Checks run before every UI request -------------------------------------------------------


def is_websocket() -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def check_request(guard: Guard, settings: Settings) -> Response | None:
    """Runs before every request to the UI; returns a response to refuse it."""
    unsafe = request.method not in ("GET", "HEAD", "OPTIONS") or is_websocket()
    if unsafe and not same_origin():
        raise Forbidden("Cross-site request refused: this request did not come from the UI's own page.")
    if guard.login_required and request.endpoint not in OPEN_ENDPOINTS and guard.logged_in_user() is None:
        if request.path.startswith("/ui/api/") or is_websocket() or request.method != "GET":
            raise Unauthorized("Please log in again.")
        return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, ACCESS_ATTRIBUTE, None) == "admin":
        require_local_management(settings, logged_in=guard.login_required)
    return None


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only a path on this site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("web.chat_page")


def add_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.path.startswith("/ui/api/") and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response
