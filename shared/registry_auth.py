"""How every client of the registry says who it is: a bearer token in the ``Authorization`` header."""

from __future__ import annotations


def registry_headers(token: str) -> dict[str, str]:
    """The headers that carry ``token`` to the registry; none for an empty token (a loopback registry).

    >>> registry_headers("s3cret")
    {'Authorization': 'Bearer s3cret'}
    >>> registry_headers("")
    {}
    """
    return {"Authorization": f"Bearer {token}"} if token else {}
