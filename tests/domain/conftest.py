"""Domain tests need no server. Makes ``case_builders`` importable (no packages here)."""

import sys
from pathlib import Path

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
