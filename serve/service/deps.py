"""FastAPI dependencies: the service context, a database session, the signed-in principal and role checks."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from armscan.serve.service.accounts import user_for_api_key
from armscan.serve.service.metrics import Metrics
from armscan.serve.service.ratelimit import RateLimiter
from armscan.serve.service.screening import InferencePool, ModelSet
from armscan.serve.service.security import role_at_least, token_hash
from armscan.serve.service.settings import Settings, get_settings
from armscan.serve.service.storage import ScanStore
from armscan.serve.service.tables import User, WebSession

SESSION_COOKIE = "armscan_session"
CSRF_HEADER = "X-CSRF-Token"
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
_KEY_TOUCH = timedelta(minutes=1)  # last_used_at is written at most this often per key


@dataclass
class ServiceContext:
    """What the lifespan builds once and every request shares."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    models: ModelSet
    pool: InferencePool
    store: ScanStore
    limiter: RateLimiter
    login_limiter: RateLimiter
    metrics: Metrics


def get_context(request: Request) -> ServiceContext:
    """The running app's context."""
    ctx: ServiceContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[ServiceContext, Depends(get_context)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_db(ctx: ContextDep) -> Iterator[Session]:
    """A session per request; routes commit what they change."""
    with ctx.sessions() as db:
        yield db


SessionDep = Annotated[Session, Depends(get_db)]


@dataclass
class Principal:
    """Who is calling, and how they proved it."""

    user: User
    via: str  # "session" or "api_key"
    csrf_token: str | None = None

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def role(self) -> str:
        return self.user.role


def _api_key(request: Request) -> str | None:
    key = request.headers.get("X-API-Key")
    auth = request.headers.get("Authorization", "")
    if not key and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key or None


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": 'Bearer realm="armscan"'})


def current_principal(request: Request, db: SessionDep, ctx: ContextDep) -> Principal:
    """Authenticate by API key or session cookie, check CSRF on unsafe cookie requests, apply the rate limit."""
    key = _api_key(request)
    if key is not None:
        found = user_for_api_key(db, key)
        if found is None:
            raise _unauthorized("invalid or revoked API key")
        user, row = found
        now = datetime.now(UTC)
        last = row.last_used_at
        if last is None or now - last > _KEY_TOUCH:
            row.last_used_at = now
            db.commit()
        principal = Principal(user, "api_key")
    else:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise _unauthorized("sign in, or send an API key in X-API-Key")
        ws = db.get(WebSession, token_hash(token))
        if ws is None or ws.expires_at < datetime.now(UTC) or not ws.user.active:
            raise _unauthorized("session expired; sign in again")
        if request.method in _UNSAFE:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), ws.csrf_token.encode()):
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing or wrong {CSRF_HEADER} header")
        principal = Principal(ws.user, "session", ws.csrf_token)
    wait = ctx.limiter.hit(f"user:{principal.user.id}")
    if wait > 0:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, f"rate limit of {ctx.settings.rate_limit_per_minute} "
                            "requests per minute reached; retry later", headers={"Retry-After": str(int(wait) + 1)})
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(role: str) -> Callable[[Principal], Principal]:
    """A dependency that lets through ``role`` and the roles above it."""

    def check(principal: PrincipalDep) -> Principal:
        if not role_at_least(principal.role, role):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs the {role} role (you are {principal.role})")
        return principal

    return check


AnalystDep = Annotated[Principal, Depends(require("analyst"))]
AdminDep = Annotated[Principal, Depends(require("admin"))]
