"""Jinja2 templates compiled before the first request, off the event loop.

Jinja2 compiles a template the first time it is asked for, and compiling the console's pages
takes ~100 ms of CPU: done inside a request handler, that blocks every laptop's push for as
long, and makes the first page after a restart slow. ``precompile`` loads every template of an
environment into its cache on a worker thread (Jinja2's cache is locked, so this is safe while
requests run); apps await it at startup.
"""

from __future__ import annotations

import asyncio

import jinja2


def _load_all(env: jinja2.Environment) -> int:
    names = env.list_templates()
    for name in names:
        env.get_template(name)
    return len(names)


async def precompile(env: jinja2.Environment) -> int:
    """Compile every template of ``env`` on a worker thread; the number compiled."""
    return await asyncio.to_thread(_load_all, env)
