"""Helpers of the infrastructure checks (tests/infra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import ROOT

INFRA = ROOT / "infra"
TERRAFORM = INFRA / "terraform"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def load_hcl(path: Path) -> dict[str, Any]:
    import hcl2

    with path.open(encoding="utf-8") as f:
        return dict(hcl2.load(f))
