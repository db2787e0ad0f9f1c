"""``python -m client.cli``: the same as the ``c1client`` command."""

from client.cli import main

main()
