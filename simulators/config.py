"""The simulated station's config (`simulators.toml`): lines, the devices on them, and the platform.

A supplier's CI writes one of these to stand up a forecourt in software. Paths are relative to the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Range = tuple[float, float]


class PatternSection(_Section):
    """Customer behaviour, in simulated seconds and litres, each a [low, high] range drawn uniformly."""

    idle_s: Range = (20.0, 120.0)
    lift_s: Range = (3.0, 10.0)
    volume_l: Range = (5.0, 60.0)
    flow_l_per_min: Range = (20.0, 50.0)
    hang_up_s: Range = (2.0, 5.0)

    @model_validator(mode="after")
    def _ordered(self) -> PatternSection:
        for name in type(self).model_fields:
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be [low, high] with 0 <= low <= high, got [{low}, {high}]")
        return self


class PumpControllerSection(_Section):
    kind: Literal["pump_controller"] = "pump_controller"
    unit: int = Field(ge=1, le=247)
    profile: str = "sim-pump-controller"
    prices_fen_per_l: list[int] = Field(min_length=1, max_length=8, description="one unit price per nozzle")
    pattern: PatternSection = PatternSection()


class RtuLineSection(_Section):
    kind: Literal["rtu"]
    name: str
    device_port: Path = Field(description="the simulator's end of the pty pair (a symlink socat makes)")
    agent_port: Path = Field(description="the agent's end of the pty pair; the agent's config names this one")
    baudrate: int = 9600
    emulate_line_timing: bool = False
    devices: list[PumpControllerSection] = Field(min_length=1)


class TcpLineSection(_Section):
    kind: Literal["tcp"]
    name: str
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    devices: list[PumpControllerSection] = Field(min_length=1)


class PlatformSection(_Section):
    broker: str = Field(pattern=r"^[^:]+:\d+$", description="HOST:PORT of the MQTT broker")
    db: Path
    report: Path
    prefix: str = "fsm/v1"
    client_id: str = Field(
        default="station-sim-platform", min_length=1, description="names the receiver's persistent MQTT session"
    )
    stations: dict[str, Path] = Field(min_length=1, description="station id -> its public key (PEM)")


class SimulationSection(_Section):
    seed: int = 1
    time_scale: float = Field(default=1.0, gt=0, le=10_000, description="simulated seconds per real second")
    report: Path | None = Field(default=None, description="where to write what the devices did (JSON)")


class SimulatorsConfig(_Section):
    simulation: SimulationSection = SimulationSection()
    profile_dirs: list[Path] = Field(default_factory=list)
    lines: list[Annotated[RtuLineSection | TcpLineSection, Field(discriminator="kind")]] = Field(default_factory=list)
    platform: PlatformSection | None = None


class SimulatorsConfigError(Exception):
    pass


_PATH_KEYS = {"device_port", "agent_port", "db", "report", "profile_dirs"}


def _resolve(node: object, base: Path, key: str = "") -> object:
    if isinstance(node, dict):
        if key == "stations":
            return {k: _resolve(v, base, "db") for k, v in node.items()}
        return {k: _resolve(v, base, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(item, base, key) for item in node]
    if isinstance(node, str) and key in _PATH_KEYS and not node.startswith("/"):
        return str(base / node)
    return node


def load_simulators_config(path: Path) -> SimulatorsConfig:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SimulatorsConfigError(f"{path}: cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SimulatorsConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return SimulatorsConfig.model_validate(_resolve(document, path.parent))
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in error['loc'])}: {error['msg']} (found {error.get('input')!r:.60})"
            for error in exc.errors(include_url=False)
        ]
        raise SimulatorsConfigError(f"{path}: {len(lines)} problem(s):\n" + "\n".join(lines)) from exc
