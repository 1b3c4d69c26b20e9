"""The `cycleresearcher` command. Each verb lives in a module of this package that registers itself on `app`
(cli/app.py).

The CLI holds no logic: a command parses options, calls one library function, and prints.
"""

from __future__ import annotations

from .app import app


def _load_commands() -> None:
    # Import for side effects: each module adds its commands to `app`.
    from . import agents, cycle, data, detect, evaluate, models, reward, train  # noqa: F401
    from . import serve  # noqa: F401  (the web UI)


_load_commands()


def main() -> None:
    app()
