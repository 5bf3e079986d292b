"""Users and API keys, shared by the routes and the ``armscan users`` commands."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from armscan.serve.service import audit
from armscan.serve.service.security import (
    ROLES,
    PasswordPolicyError,
    check_password_policy,
    dummy_hash,
    hash_password,
    new_api_key,
    token_hash,
    verify_password,
)
from armscan.serve.service.tables import ApiKey, User

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")


class AccountError(ValueError):
    """A user or key operation that cannot be done; the message says why."""


class UnknownUserError(AccountError):
    """No user by that name."""


def _check_password(password: str, username: str) -> None:
    try:
        check_password_policy(password, username)
    except PasswordPolicyError as exc:
        raise AccountError(str(exc)) from exc


def create_user(db: Session, username: str, password: str, role: str, actor: str) -> User:
    """Add a user (audited). Names are lower-case letters, digits, '.', '_' and '-'."""
    username = username.strip().lower()
    if not _USERNAME.match(username):
        raise AccountError("user name must be 2-63 characters: lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AccountError(f"invalid role {role!r}; roles are {', '.join(ROLES)}")
    _check_password(password, username)
    if db.scalar(select(User).where(User.username == username)) is not None:
        raise AccountError(f"user {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), role=role, active=True)
    db.add(user)
    db.flush()
    audit.append(db, actor, "user.create", username, details={"role": role})
    return user


def count_admins(db: Session) -> int:
    """Active admins."""
    return int(db.scalar(select(func.count()).select_from(User).where(User.role == "admin", User.active)) or 0)


def get_user(db: Session, username: str) -> User:
    """The user called ``username``."""
    user = db.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        raise UnknownUserError(f"no user {username!r}")
    return user


def update_user(db: Session, username: str, actor: str, role: str | None = None, active: bool | None = None,
                password: str | None = None) -> User:
    """Change a user's role, status or password (audited); the last active admin cannot be demoted or disabled."""
    user = get_user(db, username)
    changes: dict[str, object] = {}
    if role is not None and role != user.role:
        if role not in ROLES:
            raise AccountError(f"invalid role {role!r}; roles are {', '.join(ROLES)}")
        changes["role"] = role
    if active is not None and active != user.active:
        changes["active"] = active
    losing_admin = user.role == "admin" and user.active and (changes.get("role") or changes.get("active") is False)
    if losing_admin and count_admins(db) <= 1:
        raise AccountError("refused: this is the last active admin")
    if password is not None:
        _check_password(password, user.username)
        user.password_hash = hash_password(password)
        changes["password"] = "changed"
    user.role = str(changes.get("role", user.role))
    user.active = bool(changes.get("active", user.active))
    audit.append(db, actor, "user.update", user.username, details=changes)
    return user


def authenticate(db: Session, username: str, password: str) -> User | None:
    """The active user with this name and password, or None (same work whether or not the name exists)."""
    user = db.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None:
        verify_password(dummy_hash(), password)
        return None
    if not verify_password(user.password_hash, password) or not user.active:
        return None
    return user


def create_api_key(db: Session, username: str, name: str, actor: str) -> tuple[ApiKey, str]:
    """A new key for ``username``; returns the row and the key, which is never stored or shown again."""
    user = get_user(db, username)
    key = new_api_key()
    row = ApiKey(user_id=user.id, name=name[:64] or "default", prefix=key[:10], key_hash=token_hash(key), revoked=False)
    db.add(row)
    db.flush()
    audit.append(db, actor, "apikey.create", user.username, details={"key_id": row.id, "name": row.name})
    return row, key


def revoke_api_key(db: Session, key_id: int, actor: str) -> ApiKey:
    """Revoke a key (audited)."""
    row = db.get(ApiKey, key_id)
    if row is None:
        raise AccountError(f"no API key {key_id}")
    row.revoked = True
    audit.append(db, actor, "apikey.revoke", row.user.username, details={"key_id": key_id})
    return row


def user_for_api_key(db: Session, key: str) -> tuple[User, ApiKey] | None:
    """The active user owning an unrevoked ``key``, or None."""
    row = db.scalar(select(ApiKey).where(ApiKey.key_hash == token_hash(key)))
    if row is None or row.revoked or not row.user.active:
        return None
    return row.user, row
