"""Which models stay loaded (ModelManager with fake engines): the least recently used idle
model makes room, a busy or held one never does, a load waits for room and for a load in
progress, idle models go after their keep-alive, and Ollama's keep_alive values parse."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from modules.engines.base import EngineStats, ModelInfo
from modules.engines.crossthread import make_mailer
from modules.engines.idle_unload import IdleUnloader
from modules.engines.load_args import LoadArgs
from modules.engines.manager import ModelManager
from modules.engines.registry import Loader, LoadOptions
from modules.engines.residency import FOREVER, parse_keep_alive
from modules.errors import Unavailable

OPTIONS = LoadOptions(ctx_size=256, threads=1, threads_batch=1, batch_size=64, parallel=1)


class FakeEngine:
    def __init__(self, name: str, options: LoadOptions) -> None:
        self.info = ModelInfo(name, "", "fake", options.ctx_size, 0, 10, None, "", "")
        self.options = options
        self.busy = False
        self.closed = False

    def stats(self) -> EngineStats:
        return EngineStats(slots=1, busy_slots=int(self.busy), queued=0)

    def close(self) -> None:
        self.closed = True


class Models:
    """A model folder of fake models and a manager over it, recording every load."""

    def __init__(self, folder: Path, names=("a", "b", "c"), load_seconds: float = 0.0, **kwargs) -> None:
        for name in names:
            (folder / f"{name}.gguf").write_bytes(b"fake")
        self.loads: list[str] = []
        self.engines: dict[str, FakeEngine] = {}

        def load(name, path, options, mailer, observer=None):
            self.loads.append(name)
            time.sleep(load_seconds)
            self.engines[name] = FakeEngine(name, options)
            return self.engines[name]

        self.manager = ModelManager(
            model_dir=folder,
            preferred=None,
            loaders={"fake": Loader("fake", (".gguf",), load)},
            default_loader="fake",
            options=OPTIONS,
            mailer=make_mailer(),
            **kwargs,
        )


def test_the_least_recently_used_idle_model_makes_room(tmp_path):
    models = Models(tmp_path, max_loaded=2)
    manager = models.manager
    manager.engine("a"), manager.engine("b"), manager.engine("a")  # b is now the least recent
    manager.engine("c")
    assert manager.loaded_ids() == ["c", "a"] and models.engines["b"].closed


def test_a_busy_model_is_never_unloaded_a_load_waits_for_room(tmp_path, monkeypatch):
    monkeypatch.setattr("modules.engines.manager.ROOM_POLL_SECONDS", 0.01)
    models = Models(tmp_path, max_loaded=1)
    manager = models.manager
    manager.engine("a")
    models.engines["a"].busy = True
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(manager.engine("b")))
    waiter.start()
    time.sleep(0.2)
    assert got == [] and manager.loaded_ids() == ["a"] and not models.engines["a"].closed
    models.engines["a"].busy = False  # its generation ended
    waiter.join(timeout=10)
    assert got and got[0].info.name == "b" and models.engines["a"].closed


def test_waiting_for_room_ends_with_a_503(tmp_path, monkeypatch):
    monkeypatch.setattr("modules.engines.manager.ROOM_POLL_SECONDS", 0.01)
    models = Models(tmp_path, max_loaded=1)
    manager = models.manager
    manager.load("a", LoadArgs())
    models.engines["a"].busy = True
    manager._options = LoadOptions(**{**vars(OPTIONS), "request_timeout": 0.1})
    with pytest.raises(Unavailable) as error:
        manager.engine("b")
    assert "--models-max" in error.value.message and error.value.status == 503
    assert manager.loaded_ids() == ["a"]


def test_a_held_model_is_not_unloaded(tmp_path, monkeypatch):
    monkeypatch.setattr("modules.engines.manager.ROOM_POLL_SECONDS", 0.01)
    models = Models(tmp_path, max_loaded=1, ttl=0.01)
    manager = models.manager
    with manager.using("a"):
        time.sleep(0.05)
        manager.unload_expired()
        assert manager.loaded_ids() == ["a"]  # idle engine, but a request holds it
        manager._options = LoadOptions(**{**vars(OPTIONS), "request_timeout": 0.1})
        with pytest.raises(Unavailable):
            manager.engine("b")
    time.sleep(0.05)
    manager.unload_expired()
    assert manager.loaded_ids() == []


def test_requests_for_a_model_that_is_loading_wait_for_that_load(tmp_path):
    models = Models(tmp_path, load_seconds=0.3)
    manager = models.manager
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(manager.engine("a"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    assert manager.model_states()["a"]["state"] == "loading"
    for thread in threads:
        thread.join(timeout=10)
    assert models.loads == ["a"] and len(got) == 3 and len({id(e) for e in got}) == 1
    assert manager.model_states()["a"]["state"] == "loaded"


def test_idle_models_go_after_their_keep_alive(tmp_path):
    models = Models(tmp_path, max_loaded=3, ttl=0.2)
    manager = models.manager
    manager.engine("a")
    manager.engine("b", keep_alive=FOREVER)
    manager.engine("c", keep_alive=0.0)
    assert manager.unload_expired() is True  # c goes at once; a may still go
    assert manager.loaded_ids() == ["b", "a"]
    models.engines["a"].busy = True
    time.sleep(0.3)
    manager.unload_expired()
    assert "a" in manager.loaded_ids()  # busy: its idle time starts when it ends
    models.engines["a"].busy = False
    manager.unload_expired()
    assert "a" in manager.loaded_ids()
    time.sleep(0.3)
    assert manager.unload_expired() is False  # only b is left, kept for ever
    assert manager.loaded_ids() == ["b"]


def test_the_idle_unloader_unloads_in_the_background_and_closes(tmp_path):
    models = Models(tmp_path, ttl=0.2)
    manager = models.manager
    service = IdleUnloader(manager.unload_expired)
    manager.on_change = service.wake
    service.start()
    try:
        manager.engine("a")
        started = time.monotonic()
        while manager.loaded_ids():
            assert time.monotonic() - started < 2
            time.sleep(0.02)
        assert time.monotonic() - started >= 0.2
    finally:
        service.close()
    assert not any(thread.name == "idle-unload" for thread in threading.enumerate())


def test_load_args_are_kept_for_loads_on_demand(tmp_path):
    models = Models(tmp_path, max_loaded=1)
    manager = models.manager
    manager.load("a", LoadArgs(ctx_size=128))
    manager.engine("b")  # a makes room
    assert manager.engine("a").info.n_ctx == 128  # loaded again on demand, with its args
    assert manager.load("a", LoadArgs(ctx_size=128)) is models.engines["a"]  # the same: no reload
    manager.load("a", LoadArgs())  # a load without args takes them away
    assert manager.engine("a").info.n_ctx == 256 and models.loads.count("a") == 3


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (30, 30.0),
        (2.5, 2.5),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("90s", 90.0),
        ("300ms", 0.3),
        ("10", 10.0),
        (-1, FOREVER),
        ("-1", FOREVER),
        ("-5m", FOREVER),
    ],
)
def test_keep_alive_values(value, seconds):
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value", ["", "soon", "5x", "m5", "inf", "nan", True, float("inf")])
def test_bad_keep_alive_values(value):
    with pytest.raises(ValueError):
        parse_keep_alive(value)
