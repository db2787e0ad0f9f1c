"""``python -m hub.cli`` runs ``c1hub``."""

from hub.cli import main

main()
