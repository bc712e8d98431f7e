"""Makes ``web_support`` importable (no packages under tests/)."""

import sys
from pathlib import Path

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from web_support import (  # noqa: E402
    browser,
    issue,
    web_city,
    web_dist,
    web_server,
    web_tokens,
)

__all__ = ["browser", "issue", "web_city", "web_dist", "web_server", "web_tokens"]
