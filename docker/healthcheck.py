"""Container liveness probe: exit 0 when GET /health answers 200 on the port the service binds.

The port comes from the same settings `visrag serve` reads (``VISRAG_PORT``), so the probe and the
server cannot disagree. Standard library only besides the settings class: no curl in the image.
"""

from __future__ import annotations

import sys
import urllib.request

from app.settings import Settings


def main() -> int:
    url = f"http://127.0.0.1:{Settings().port}/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            if response.status == 200:
                return 0
            print(f"unhealthy: {url} answered {response.status}", file=sys.stderr)
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
