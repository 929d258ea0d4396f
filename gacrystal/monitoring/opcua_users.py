"""The OPC UA users file (GAmonitor.py --opcua_users FILE): one `name:hash` line per user, the
password kept only as a salted scrypt hash (Python's hashlib; no password is stored or typed on a
command line).

    python GAmonitor.py --opcua_users users.txt --add_opcua_user chemist   # asks twice

A line reads `chemist:scrypt$16384$8$1$SALT$HASH` (hex): scrypt with n 2^14, r 8, p 1 (16 MB of
memory a check), so that a file copied off the machine costs that much per guessed password. A
line with a password in clear is refused, with the command that replaces it.
"""
from __future__ import annotations

import getpass
import hashlib
import hmac
import os
from pathlib import Path

from gacrystal.errors import UserError

SCHEME = "scrypt"
COST, BLOCK, PARALLEL = 2 ** 14, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=COST, r=BLOCK, p=PARALLEL,
                            dklen=HASH_BYTES)
    return f"{SCHEME}${COST}${BLOCK}${PARALLEL}${salt.hex()}${digest.hex()}"


def password_matches(stored: str, password: str) -> bool:
    scheme, cost, block, parallel, salt, digest = stored.split("$")
    given = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(cost),
                           r=int(block), p=int(parallel), dklen=len(bytes.fromhex(digest)))
    return hmac.compare_digest(given.hex(), digest)


def read_users(path: str | Path) -> dict[str, str]:
    """{name: stored hash} of the users file; a line that is not `name:scrypt$...` is refused."""
    users = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, colon, stored = line.partition(":")
        name, stored = name.strip(), stored.strip()
        if not colon or not name:
            raise UserError(f"{path}, line {number}: not a user line (name:hash); add users with "
                            f"python GAmonitor.py --opcua_users {path} --add_opcua_user NAME")
        if not stored.startswith(SCHEME + "$") or stored.count("$") != 5:
            raise UserError(f"{path}, line {number}: the password of {name!r} is stored in clear; "
                            f"remove the line and add the user again with python GAmonitor.py "
                            f"--opcua_users {path} --add_opcua_user {name}")
        users[name] = stored
    return users


def add_user(path: str | Path, name: str, ask=None) -> str:
    """Adds (or replaces) a user, asking for the password twice without echo (getpass, unless
    `ask` is given); returns what to print. The file is created if absent; other users' lines are
    kept as they are."""
    path, ask = Path(path), ask or getpass.getpass
    if not name or ":" in name or name != name.strip():
        raise UserError(f"a user name needs no colon and no spaces at its ends. Received: {name!r}")
    password = ask(f"password for {name}: ")
    if not password:
        raise UserError("an empty password is not a password; nothing was written")
    if ask("the same again: ") != password:
        raise UserError("the two passwords differ; nothing was written")
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [line for line in lines if line.partition(":")[0].strip() != name]
    replaced = len(kept) < len(lines)
    path.write_text("\n".join(kept + [f"{name}:{hash_password(password)}"]) + "\n",
                    encoding="utf-8")
    if os.name == "posix":
        path.chmod(0o600)  # the hashes are for this account's eyes
    return f"{'replaced' if replaced else 'added'} user {name} in {path}"


class PasswordUsers:
    """asyncua's user manager for opcua_users: a listed name with its password is a user."""

    def __init__(self, users: dict[str, str]):
        self.users = users

    def get_user(self, iserver, username=None, password=None, certificate=None):
        from asyncua.crypto.permission_rules import User, UserRole
        stored = self.users.get(username)
        if stored is not None and password_matches(stored, password or ""):
            return User(role=UserRole.User, name=username)
        return None
