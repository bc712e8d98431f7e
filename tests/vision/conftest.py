"""Fixtures for the camera pipeline's suites: real Triton servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from vision_support import TEST_MODELS

from vision.inference import local_model_repository
from zongzhi.servers import EmbeddedTriton


@pytest.fixture(scope="session")
def sequences(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The composed test sequences (scripts/compose_sequences.py, 24 frames each):
    ``<dir>/crowd-forming``, ``<dir>/fire-lane``, ``<dir>/empty`` and ``sequences.json``."""
    import importlib.util
    import sys

    from support import ROOT

    name = "compose_sequences"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look themselves up there
        spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("sequences")
    module.compose(out, 24)
    return out


@pytest.fixture
def own_triton(tmp_path: Path) -> Iterator[EmbeddedTriton]:
    """A Triton of this test's own (product models + the broken one), so a test may
    stop and restart it without disturbing the session's server."""
    server = EmbeddedTriton(tmp_path / "triton-data", (local_model_repository(), TEST_MODELS))
    server.start()
    yield server
    server.stop()
