"""Accounts and API keys (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from armscan.serve.service import accounts
from armscan.serve.service.deps import AdminDep, SessionDep
from armscan.serve.service.schemas import ApiKeyIn, ApiKeyOut, NewApiKeyOut, UserIn, UserOut, UserPatch
from armscan.serve.service.tables import ApiKey, User

router = APIRouter(prefix="/v1", tags=["users"])


def _user_out(u: User) -> UserOut:
    return UserOut(username=u.username, role=u.role, active=u.active, created_at=u.created_at)


def _key_out(k: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(id=k.id, username=k.user.username, name=k.name, prefix=k.prefix, revoked=k.revoked,
                     created_at=k.created_at, last_used_at=k.last_used_at)


@router.get("/users", response_model=list[UserOut])
def list_users(_: AdminDep, db: SessionDep) -> list[UserOut]:
    """Every account."""
    return [_user_out(u) for u in db.scalars(select(User).order_by(User.username))]


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED)
def create_user(body: UserIn, principal: AdminDep, db: SessionDep) -> UserOut:
    """Add an officer, analyst or admin."""
    try:
        user = accounts.create_user(db, body.username, body.password, body.role, principal.username)
    except accounts.AccountError as exc:
        code = status.HTTP_409_CONFLICT if "already exists" in str(exc) else status.HTTP_422_UNPROCESSABLE_CONTENT
        raise HTTPException(code, str(exc)) from exc
    db.commit()
    return _user_out(user)


@router.patch("/users/{username}", response_model=UserOut)
def update_user(username: str, body: UserPatch, principal: AdminDep, db: SessionDep) -> UserOut:
    """Change a role, disable or enable an account, or set a new password."""
    try:
        user = accounts.update_user(db, username, principal.username, body.role, body.active, body.password)
    except accounts.UnknownUserError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except accounts.AccountError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    db.commit()
    return _user_out(user)


@router.get("/api-keys", response_model=list[ApiKeyOut])
def list_keys(_: AdminDep, db: SessionDep) -> list[ApiKeyOut]:
    """Every API key (never the key itself)."""
    return [_key_out(k) for k in db.scalars(select(ApiKey).order_by(ApiKey.id))]


@router.post("/users/{username}/api-keys", response_model=NewApiKeyOut, status_code=status.HTTP_201_CREATED)
def create_key(username: str, body: ApiKeyIn, principal: AdminDep, db: SessionDep) -> NewApiKeyOut:
    """A new API key for a machine account; the answer is the only time the key is shown."""
    try:
        row, key = accounts.create_api_key(db, username, body.name, principal.username)
    except accounts.UnknownUserError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    db.commit()
    return NewApiKeyOut(**_key_out(row).model_dump(), key=key)


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut)
def revoke_key(key_id: int, principal: AdminDep, db: SessionDep) -> ApiKeyOut:
    """Revoke a key at once."""
    try:
        row = accounts.revoke_api_key(db, key_id, principal.username)
    except accounts.AccountError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    db.commit()
    return _key_out(row)
