"""Redis URLs: one server (``redis://``, ``rediss://``, ``unix://``) or a Redis Cluster
(``redis+cluster://host:port[,host:port...]/``, ``rediss+cluster://``).

Parsing only, no client: the settings validate a URL with it at start-up, and
:mod:`storefront_kit.redis` builds the client it names.
"""

from typing import Any
from urllib.parse import unquote

__all__ = ["CLUSTER_SCHEMES", "cluster_credentials", "cluster_nodes", "is_cluster_url"]

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
"""URL schemes that name a Redis Cluster rather than one server."""


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``)."""
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The startup nodes a ``redis+cluster://h:p,h:p/`` URL lists (port 6379 when left out)."""
    if not is_cluster_url(url):
        raise ValueError(f"not a Redis Cluster URL: {url.split('://', 1)[0]}://...")
    netloc = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    nodes = []
    for part in netloc.split(","):
        if not part:
            continue
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "6379")
        if not host or not port.isdigit():
            raise ValueError(f"a cluster node must be host:port, got {part!r}")
        nodes.append((host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError("a Redis Cluster URL lists at least one host:port")
    return nodes


def cluster_credentials(url: str) -> dict[str, Any]:
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    if "@" not in netloc:
        return {}
    userinfo = netloc.rsplit("@", 1)[0]
    username, _, password = userinfo.partition(":") if ":" in userinfo else ("", "", userinfo)
    credentials: dict[str, Any] = {"password": unquote(password)} if password else {}
    if username:
        credentials["username"] = unquote(username)
    return credentials
