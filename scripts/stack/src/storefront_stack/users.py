"""PostgreSQL and Elasticsearch refuse to run as root: run them as an unprivileged user."""

import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["SERVICE_USER", "chown_tree", "ensure_service_user", "run_as_kwargs"]

SERVICE_USER = os.environ.get("STOREFRONT_STACK_USER", "storefront")


def _is_root() -> bool:
    return os.geteuid() == 0


def ensure_service_user() -> None:
    """Create the unprivileged system user when running as root (no-op otherwise)."""
    if not _is_root():
        return
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(
            [useradd, "--system", "--create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True,
        )


def run_as_kwargs() -> dict[str, Any]:
    """``subprocess.Popen`` keyword arguments that drop root privileges."""
    if not _is_root():
        return {}
    ensure_service_user()
    entry = pwd.getpwnam(SERVICE_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def chown_tree(path: Path) -> None:
    """Give the unprivileged user a directory it must write to (and make parents traversable)."""
    if not _is_root():
        return
    ensure_service_user()
    entry = pwd.getpwnam(SERVICE_USER)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    parent = path.resolve().parent
    while parent != parent.parent:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
        parent = parent.parent
