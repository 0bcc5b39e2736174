"""Process wrapper used by supervisord: load a JSON environment file, then exec the command.

Keeps secrets and JSON-valued settings out of supervisord's config syntax:
`python -m mlops_platform.launcher.launch <env.json> -- <command> [args…]`.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit(
            "usage: python -m mlops_platform.launcher.launch <env.json> -- <command> [args...]"
        )
    with open(argv[0], encoding="utf-8") as handle:
        extra = json.load(handle)
    os.execvpe(argv[2], argv[2:], {**os.environ, **extra})


if __name__ == "__main__":
    main(sys.argv[1:])
