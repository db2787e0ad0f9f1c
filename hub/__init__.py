"""c1hub: the room hub, the national stand-in, and the shared protocol (``hub.protocol``)."""

__version__ = "0.1.0"
