"""Password hashing with argon2id (``argon2-cffi``). A password is never stored, logged or shown."""

from __future__ import annotations

import functools
import logging

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.errors import BadInputError

logger = logging.getLogger(__name__)

MIN_LENGTH = 8
MAX_LENGTH = 1024

_hasher = PasswordHasher()  # argon2id with the library's current recommended costs


def check_password_rule(password: object) -> str:
    """``password`` if it is acceptable, else :class:`BadInputError` saying the rule (never the password)."""
    if not isinstance(password, str) or not password.strip():
        raise BadInputError(f"Choose a password of at least {MIN_LENGTH} characters.")
    if len(password) < MIN_LENGTH:
        raise BadInputError(f"This password is too short: use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise BadInputError(f"This password is too long: use at most {MAX_LENGTH} characters.")
    return password


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (``$argon2id$…``), after checking the password rule."""
    return _hasher.hash(check_password_rule(password))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; False for a mismatch or a hash that is not argon2."""
    if not stored_hash or not isinstance(password, str) or len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except VerifyMismatchError:
        return False
    except (VerificationError, InvalidHashError):
        logger.warning("a stored password hash could not be checked (not an argon2 hash)")
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when ``stored_hash`` was made with weaker settings than today's (rehash at the next sign-in)."""
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


@functools.cache
def dummy_hash() -> str:
    """A hash compared against for names without an account, so that a wrong name costs as long as a wrong
    password (made at its first use: hashing takes a tenth of a second that no command should pay at start)."""
    return _hasher.hash("not a password of anyone")
