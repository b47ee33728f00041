"""Which upstream servers there are: `--upstream NAME=URL` flags and `user_data/upstreams.yaml`.

```yaml
health:              # optional; these are the defaults
  interval: 5        # seconds between two /health checks of an upstream
  timeout: 2         # seconds a check may take
  failures: 2        # consecutive failures (checks or requests) that eject an upstream
upstreams:
  box1:
    url: http://10.0.0.11:8080
    key_env: BOX1_KEY          # or key: ..., or key_file: /run/secrets/box1
    capacity: 4                # requests it runs at once (default: what it reports)
    kind: auto                 # llama-server, vllm, ollama, hearth, llama-cpp-python, openai
    models: [llama-3.1-8b]     # offer only these ("upstream-id=name" renames one)
    ctx_size: 8192             # when the server does not say
    tls_verify: true
    ca_file: /etc/hearth/box1-ca.pem
```

A flag names an upstream and its URL (`--upstream box1=http://10.0.0.11:8080`, or a bare URL
named after its host and port); a file entry of the same name adds its options. Keys never
go on the command line (`ps` shows it to every user of the machine): they come from the
file, or from the environment variable `HEARTH_UPSTREAM_<NAME>_KEY` (the name upper-cased,
other characters as `_`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...settings import SettingsError
from .kinds import KINDS

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
FILE_NAME = "upstreams.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HealthEntry(_Strict):
    interval: float = Field(5.0, gt=0, le=3600)
    timeout: float = Field(2.0, gt=0, le=600)
    failures: int = Field(2, ge=1, le=100)


class UpstreamEntry(_Strict):
    url: str | None = None
    key: str | None = None
    key_env: str | None = None
    key_file: Path | None = None
    kind: Literal["auto", *KINDS] = "auto"  # type: ignore[valid-type]
    capacity: int | None = Field(None, ge=1, le=100_000)
    models: list[str] | None = None
    ctx_size: int | None = Field(None, ge=16, le=1 << 24)
    tls_verify: bool = True
    ca_file: Path | None = None


class UpstreamsFile(_Strict):
    health: HealthEntry = Field(default_factory=HealthEntry)
    upstreams: dict[str, UpstreamEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class HealthPolicy:
    interval: float = 5.0
    timeout: float = 2.0
    failures: int = 2


@dataclass(frozen=True)
class UpstreamConfig:
    name: str
    url: str
    key: str | None = field(default=None, repr=False)
    kind: str = "auto"
    capacity: int | None = None
    models: Mapping[str, str] | None = None  # upstream id -> the name Hearth offers; None: all
    ctx_size: int | None = None
    tls_verify: bool = True
    ca_file: str | None = None


@dataclass(frozen=True)
class FleetConfig:
    upstreams: tuple[UpstreamConfig, ...] = ()
    health: HealthPolicy = HealthPolicy()

    def __bool__(self) -> bool:
        return bool(self.upstreams)


def load_fleet_config(
    flags: Sequence[str], file: Path | None, environ: Mapping[str, str] | None = None
) -> FleetConfig:
    """The upstreams from the flags and the file (which may be missing); SettingsError, one
    line naming the flag or the file and the key, for anything wrong."""
    environ = os.environ if environ is None else environ
    parsed = _read_file(file) if file is not None and file.is_file() else UpstreamsFile()
    source = str(file)
    entries = dict(parsed.upstreams)
    for name in entries:
        if not NAME.match(name):
            raise SettingsError(f"{source}: upstream name {name!r}: use letters, digits and . _ : -")
    order = list(entries)
    for value in flags:
        name, url = _split_flag(value)
        entry = entries.get(name, UpstreamEntry())
        entries[name] = entry.model_copy(update={"url": url})
        if name not in order:
            order.append(name)
    upstreams = []
    urls: dict[str, str] = {}
    for name in order:
        entry = entries[name]
        where = f"{source}: upstream '{name}'" if name in parsed.upstreams else f"--upstream {name}"
        if not entry.url:
            raise SettingsError(f"{where}: no url")
        _check_url(entry.url, where)
        if entry.url.rstrip("/") in urls:
            raise SettingsError(f"{where}: the same URL as upstream '{urls[entry.url.rstrip('/')]}'")
        urls[entry.url.rstrip("/")] = name
        upstreams.append(
            UpstreamConfig(
                name=name,
                url=entry.url,
                key=_key(name, entry, environ, where),
                kind=entry.kind,
                capacity=entry.capacity,
                models=_models(entry.models, where),
                ctx_size=entry.ctx_size,
                tls_verify=entry.tls_verify,
                ca_file=str(entry.ca_file) if entry.ca_file else None,
            )
        )
    health = parsed.health
    policy = HealthPolicy(health.interval, min(health.timeout, health.interval * 10), health.failures)
    return FleetConfig(tuple(upstreams), policy)


def _read_file(path: Path) -> UpstreamsFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return UpstreamsFile()
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping with 'upstreams' (and 'health')")
    try:
        return UpstreamsFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise SettingsError(f"{path}: {where}: {error['msg']}") from None


def _split_flag(value: str) -> tuple[str, str]:
    """`NAME=URL`, or a bare URL (named `host:port`)."""
    name, sep, url = value.partition("=")
    if not sep or "://" in name:
        url = value
        parts = urlsplit(url)
        name = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    name, url = name.strip(), url.strip()
    if not NAME.match(name):
        raise SettingsError(f"--upstream {value}: the name {name!r}: use letters, digits and . _ : -")
    _check_url(url, f"--upstream {value}")
    return name, url


def _check_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{where}: {url!r} is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise SettingsError(f"{where}: put the key in upstreams.yaml or an environment variable, not the URL")
    try:
        parts.port  # noqa: B018 - raises for a bad port
    except ValueError:
        raise SettingsError(f"{where}: {url!r} has a bad port") from None


def key_variable(name: str) -> str:
    return "HEARTH_UPSTREAM_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_KEY"


def _key(name: str, entry: UpstreamEntry, environ: Mapping[str, str], where: str) -> str | None:
    given = [k for k in ("key", "key_env", "key_file") if getattr(entry, k)]
    if len(given) > 1:
        raise SettingsError(f"{where}: give one of key, key_env and key_file")
    if entry.key:
        return entry.key
    if entry.key_env:
        value = environ.get(entry.key_env)
        if not value:
            raise SettingsError(f"{where}: the environment variable {entry.key_env} (key_env) is not set")
        return value
    if entry.key_file:
        try:
            value = entry.key_file.expanduser().read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{where}: cannot read key_file {entry.key_file}: {exc}") from None
        if not value:
            raise SettingsError(f"{where}: key_file {entry.key_file} is empty")
        return value
    return environ.get(key_variable(name)) or None


def _models(values: list[str] | None, where: str) -> dict[str, str] | None:
    if values is None:
        return None
    mapping = {}
    for value in values:
        upstream_id, sep, name = value.partition("=")
        upstream_id, name = upstream_id.strip(), (name.strip() if sep else upstream_id.strip())
        if not upstream_id or not name:
            raise SettingsError(f"{where}: models entry {value!r}: use ID or ID=NAME")
        mapping[upstream_id] = name
    return mapping


def fleet_config(settings) -> FleetConfig:
    """The fleet of a `Settings`: its --upstream flags and its upstreams file."""
    file = settings.upstreams_file or settings.user_data_dir / FILE_NAME
    if settings.upstreams_file is not None and not file.is_file():
        raise SettingsError(f"--upstreams-file: {file} does not exist")
    config = load_fleet_config(settings.upstream, file)
    if not config and not settings.local_model:
        raise SettingsError(
            f"--no-local-model: there is no model to serve; add --upstream NAME=URL (or {FILE_NAME})"
        )
    return config
