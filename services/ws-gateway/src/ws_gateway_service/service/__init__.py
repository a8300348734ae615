"""Use cases: this replica's sockets (``hub``) and who is online anywhere (``presence``)."""
