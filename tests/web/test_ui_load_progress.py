"""Model load progress: llama.cpp's progress callback, read through ModelManager.load_progress()."""

from __future__ import annotations

from pathlib import Path

from modules.engines.crossthread import make_mailer
from modules.engines.manager import LOAD_PROGRESS, ModelManager
from modules.engines.registry import Loader, LoadOptions, default_loaders

OPTIONS = LoadOptions(ctx_size=256, threads=1, threads_batch=1, batch_size=64, parallel=1)


class RecordingProgress(dict):
    """The manager's progress table, remembering every value written into it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, float]] = []

    def __setitem__(self, key, value) -> None:
        self.seen.append((key, value))
        super().__setitem__(key, value)


def test_a_real_load_reports_fractions_up_to_one(model_dir: Path):
    manager = ModelManager(
        model_dir=model_dir,
        preferred=None,
        loaders=default_loaders(),
        default_loader="llama.cpp",
        options=OPTIONS,
        mailer=make_mailer(),
    )
    manager._progress = RecordingProgress()
    try:
        manager.load("tiny")
        fractions = [f for name, f in manager._progress.seen if name == "tiny"]
        assert fractions[0] == 0.0 and fractions[-1] == 1.0
        assert len(fractions) > 3 and fractions == sorted(fractions)
        assert manager.load_progress() == {}  # nothing is loading any more
    finally:
        manager.close()


def test_progress_is_visible_while_loading_and_cleared_after_a_failure(tmp_path):
    (tmp_path / "slow.gguf").write_bytes(b"x")
    seen = {}

    def load(name, path, options, mailer, observer=None):
        report = LOAD_PROGRESS.get()
        report(0.25)
        seen["during"] = manager.load_progress()
        report(0.75)
        seen["later"] = manager.load_progress()
        from modules.errors import EngineFailure

        raise EngineFailure("could not load slow.gguf")

    manager = ModelManager(
        model_dir=tmp_path,
        preferred=None,
        loaders={"fake": Loader("fake", (".gguf",), load)},
        default_loader="fake",
        options=OPTIONS,
        mailer=make_mailer(),
    )
    try:
        manager.load("slow")
    except Exception as exc:  # the failure reaches the caller as it was
        assert "slow.gguf" in str(exc)
    assert seen == {"during": {"slow": 0.25}, "later": {"slow": 0.75}}
    assert manager.load_progress() == {} and LOAD_PROGRESS.get() is None
