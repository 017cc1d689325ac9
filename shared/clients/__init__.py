"""Typed HTTP clients of the desk's services, for reading another service's data over REST."""

from shared.clients.base import (
    CircuitBreaker,
    NotFoundAtPeer,
    PeerCallError,
    PeerError,
    PeerUnavailable,
    ServiceClient,
)

__all__ = ["CircuitBreaker", "NotFoundAtPeer", "PeerCallError", "PeerError", "PeerUnavailable", "ServiceClient"]
