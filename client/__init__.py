"""c1client: the operator laptop: local signed store, entry UI and CLI, sync to the hub."""
