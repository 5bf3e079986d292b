"""Sign in and out of the web page (session cookie + CSRF token)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy import delete

from armscan.serve.service import audit
from armscan.serve.service.accounts import authenticate
from armscan.serve.service.deps import SESSION_COOKIE, ContextDep, PrincipalDep, SessionDep
from armscan.serve.service.schemas import LoginIn, MeOut
from armscan.serve.service.security import new_token, token_hash
from armscan.serve.service.tables import WebSession

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/login", response_model=MeOut)
def login(body: LoginIn, request: Request, response: Response, db: SessionDep, ctx: ContextDep) -> MeOut:
    """Check the password and start a session; the cookie is HttpOnly and SameSite=Strict."""
    client = request.client.host if request.client else "unknown"
    for key in (f"login-user:{body.username.lower()}", f"login-ip:{client}"):
        wait = ctx.login_limiter.hit(key)
        if wait > 0:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many sign-in attempts; wait and try again",
                                headers={"Retry-After": str(int(wait) + 1)})
    user = authenticate(db, body.username, body.password)
    if user is None:
        audit.append(db, body.username.lower()[:64], "auth.login_failed", client)
        db.commit()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong user name or password, or the account is disabled")
    token, csrf = new_token(), new_token()
    now = datetime.now(UTC)
    expires = now + timedelta(hours=ctx.settings.session_hours)
    db.execute(delete(WebSession).where(WebSession.expires_at < now))
    db.add(WebSession(token_hash=token_hash(token), user_id=user.id, csrf_token=csrf, created_at=now, expires_at=expires))
    audit.append(db, user.username, "auth.login", client)
    db.commit()
    response.set_cookie(SESSION_COOKIE, token, max_age=int(ctx.settings.session_hours * 3600), httponly=True,
                        samesite="strict", secure=ctx.settings.cookie_secure, path="/")
    return MeOut(username=user.username, role=user.role, csrf_token=csrf)


@router.get("/me", response_model=MeOut)
def me(principal: PrincipalDep) -> MeOut:
    """Who is signed in (and the CSRF token for the page)."""
    return MeOut(username=principal.username, role=principal.role, csrf_token=principal.csrf_token)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, response: Response, principal: PrincipalDep, db: SessionDep) -> Response:
    """End this browser's session."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        db.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))
    audit.append(db, principal.username, "auth.logout")
    db.commit()
    out = Response(status_code=status.HTTP_204_NO_CONTENT)
    out.delete_cookie(SESSION_COOKIE, path="/")
    return out
