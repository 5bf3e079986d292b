"""Passwords (argon2id), random tokens, and the hashes under which tokens are stored."""

from __future__ import annotations

import hashlib
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("officer", "analyst", "admin")  # each role may do everything the ones before it may
API_KEY_PREFIX = "ak_"
MIN_PASSWORD = 10

_hasher = PasswordHasher()  # argon2id with the library's current defaults


class PasswordPolicyError(ValueError):
    """A password that is too weak to accept."""


def check_password_policy(password: str, username: str = "") -> None:
    """Refuse short passwords and ones that contain the user name."""
    if len(password) < MIN_PASSWORD:
        raise PasswordPolicyError(f"password must be at least {MIN_PASSWORD} characters long")
    if username and username.lower() in password.lower():
        raise PasswordPolicyError("password must not contain the user name")


def hash_password(password: str) -> str:
    """An argon2id hash with its own salt and parameters."""
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """True if ``password`` matches ``stored``; never raises on a mismatch."""
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def dummy_hash() -> str:
    """Checked against when a user name is unknown, so that the answer takes as long as for a known one."""
    return hash_password(secrets.token_hex(16))


def role_at_least(role: str, needed: str) -> bool:
    """True if ``role`` includes the rights of ``needed``."""
    return ROLES.index(role) >= ROLES.index(needed)


def new_token() -> str:
    """A 256-bit URL-safe random token."""
    return secrets.token_urlsafe(32)


def new_api_key() -> str:
    """A new API key; it is shown once and only its hash is stored."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """SHA-256 hex of a high-entropy token (API key or session), the form in which it is stored."""
    return hashlib.sha256(token.encode()).hexdigest()
