"""The daemon's settings: a TOML file and command-line flags, validated once at start."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from host.config.presets import validation_error
from host.errors import InputError


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "audiohost"


DEFAULT_ALLOW = ("127.0.0.0/8", "::1/128")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve wider than loopback


class DaemonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    projects: list[Path] = Field(default_factory=list, description="projects to serve and watch")
    roots: list[Path] = Field(default_factory=list, description="folders OSC paths may point into (projects are always allowed)")
    model: Optional[str] = None
    device: Optional[str] = None
    compile: bool = False
    cpu_offload: bool = False
    threads: Optional[int] = Field(None, ge=1, le=256, description="CPU threads for torch")
    osc_host: str = "127.0.0.1"
    osc_port: int = Field(9010, ge=0, le=65535)
    reply_port: int = Field(9011, ge=1, le=65535)
    allow: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOW), description="client networks served when bound wider than loopback")
    state_dir: Path = Field(default_factory=default_state_dir)
    batch_size: int = Field(8, ge=1, le=64)
    queue_bound: int = Field(256, ge=1, le=100000)
    max_stem_seconds: float = Field(600.0, gt=0, le=36000)
    max_stem_mb: float = Field(2048.0, gt=0)
    settle_seconds: float = Field(1.0, ge=0.05, le=60, description="a dropped file must hold still this long")
    polling: bool = Field(False, description="poll the folders (network shares) instead of OS events")
    progress_per_second: float = Field(4.0, gt=0, le=50)
    damaged_journal: Literal["refuse", "start-fresh"] = Field(
        "refuse", description="a damaged journal: refuse to start (default) or move it aside and start an empty queue"
    )
    # where the model runs: in this process, on a Ray cluster, or on one if it can be reached
    backend: Literal["local", "ray", "auto"] = "local"
    ray_address: str = Field("auto", description="auto, local, HOST:PORT or ray://HOST:PORT")
    replicas: Optional[int] = Field(None, ge=1, le=1024, description="model replicas on the cluster (default: as many as it holds)")
    gpus_per_replica: Optional[float] = Field(None, ge=0, le=64, description="GPUs each replica reserves; 0 for CPU replicas (default: 1 on a cluster with GPUs, else 0)")

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"'{net}' is not a network (e.g. 192.168.1.0/24)") from None
        return value

    @field_validator("ray_address")
    @classmethod
    def _ray_address(cls, value: str) -> str:
        value = value.strip()
        if value in ("auto", "local"):
            return value
        if not re.fullmatch(r"(ray://)?(\[[0-9a-fA-F:]+\]|[^:/\s]+):\d{1,5}", value) or not 0 < int(value.rsplit(":", 1)[1]) < 65536:
            raise ValueError(f"'{value}' is not auto, local, HOST:PORT or ray://HOST:PORT")
        return value

    def loopback_only_note(self) -> Optional[str]:
        """One line for the start-up log when the door listens wider than loopback but the
        allowlist still serves only loopback clients (the default); None otherwise."""
        if _is_loopback(self.osc_host) or set(self.allow) != set(DEFAULT_ALLOW):
            return None
        return (
            f"listening on {self.osc_host} but serving only loopback clients (127.0.0.0/8, ::1); "
            'to serve others, list their networks in the config file, e.g. allow = ["127.0.0.0/8", "192.168.1.0/24"]'
        )

    def allowed(self, host: str) -> bool:
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr in ipaddress.ip_network(n, strict=False) for n in self.allow)


def load_config(path: Optional[Path], overrides: dict) -> DaemonConfig:
    data: dict = {}
    where = str(path) if path else "command line"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(where, "file not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise InputError(where, f"invalid TOML: {err}") from None
        base = Path(path).resolve().parent
        for key in ("projects", "roots"):
            if isinstance(data.get(key), list):
                data[key] = [str((base / Path(p).expanduser())) for p in data[key]]
        if isinstance(data.get("state_dir"), str):
            data["state_dir"] = str(base / Path(data["state_dir"]).expanduser())
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return DaemonConfig.model_validate(data)
    except ValidationError as err:
        raise validation_error(where, err, known=DaemonConfig.model_fields) from None
