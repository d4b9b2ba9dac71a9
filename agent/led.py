"""The status LED: what staff see from across the shop, driven through Linux sysfs (`/sys/class/leds/<name>/`).

Theory of operation: the agent's health picks a row of `LIGHTS` (what green and red do); each physical LED gets
the setting that row asks of it, and only an LED whose setting changed is written, so a box that stays well
writes nothing after the first second. Blinking is the kernel's `timer` trigger, so the LED keeps blinking
with no help from the agent. Boxes wire the LED as two LEDs (green and red) or as one multicolour LED
(`multi_index`/`multi_intensity`); both get the same rows, the multicolour one by mixing (red and green make
amber). A missing or unwritable LED is logged once and then left alone: the LED is a courtesy, the records are
the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from agent.logs import get_logger
from drivers.schema import Ge, Le, Matches, doc, settings

log = get_logger("agent.led")

LedName = Annotated[str, Matches("a sysfs LED name such as 'status:green'", r"[A-Za-z0-9][A-Za-z0-9_:.+-]{0,63}")]


@settings
class LedSection:
    """The box's status LED, driven through Linux sysfs: a green and a red LED, or one bicolour LED."""

    enabled: bool = doc("drive the status LED", default=False)
    green: LedName | None = doc("the green LED's name under leds_dir", default=None)
    red: LedName | None = doc("the red LED's name under leds_dir", default=None)
    bicolour: LedName | None = doc(
        "a multicolour LED whose multi_index names red and green, instead of green and red", default=None
    )
    leds_dir: Path = doc("where the kernel lists its LEDs", default=Path("/sys/class/leds"))
    blink_on_ms: Annotated[int, Ge(50), Le(5000)] | None = doc(
        "how long a blink is lit, in ms; unset: the kernel's 500 ms, and delay_on need not be writable", default=None
    )
    blink_off_ms: Annotated[int, Ge(50), Le(5000)] | None = doc(
        "how long a blink is dark, in ms; unset: the kernel's 500 ms, and delay_off need not be writable",
        default=None,
    )

    def __post_init__(self) -> None:
        if self.enabled and self.bicolour is None and self.green is None:
            raise ValueError("an enabled LED needs green (and red) or bicolour")
        if self.bicolour is not None and (self.green is not None or self.red is not None):
            raise ValueError("give either bicolour or green/red, not both")


LedState = Literal["starting", "ok", "degraded", "fault", "stopped"]
Mode = Literal["off", "on", "blink"]

LIGHTS: dict[LedState, tuple[Mode, Mode]] = {
    "starting": ("on", "on"),
    "ok": ("on", "off"),
    "degraded": ("blink", "off"),
    "fault": ("off", "on"),
    "stopped": ("off", "off"),
}
"""(green, red) per state. Starting is amber (both lit), which no running state uses; stopped is dark."""


@dataclass(frozen=True, slots=True)
class LedSetting:
    """What one physical LED is told; `red`/`green` say which colours a multicolour LED mixes."""

    mode: Mode
    red: bool = False
    green: bool = False


class SysfsLed:
    """One LED under the kernel's LED class: the files it has, written the way the kernel expects."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def apply(self, setting: LedSetting, blink_on_ms: int | None, blink_off_ms: int | None) -> None:
        """Raises OSError if the LED is missing or refuses a value. A blink time of None is left to the kernel:
        `delay_on`/`delay_off` appear, owned by root, only once the trigger is set, so a udev rule can make
        `trigger` and `brightness` writable for the agent's group but not them."""
        brightness = (self.directory / "max_brightness").read_text().strip()
        if (self.directory / "multi_index").exists() and setting.mode != "off":
            self._mix(setting, brightness)
        if setting.mode == "blink":
            self._write("trigger", "timer")
            if blink_on_ms is not None:
                self._write("delay_on", str(blink_on_ms))
            if blink_off_ms is not None:
                self._write("delay_off", str(blink_off_ms))
        else:
            self._write("trigger", "none")
            self._write("brightness", brightness if setting.mode == "on" else "0")

    def _mix(self, setting: LedSetting, brightness: str) -> None:
        colours = (self.directory / "multi_index").read_text().split()
        lit = {"red": setting.red, "green": setting.green}
        self._write("multi_intensity", " ".join(brightness if lit.get(colour) else "0" for colour in colours))

    def _write(self, name: str, value: str) -> None:
        (self.directory / name).write_text(value)


class StatusLed:
    def __init__(self, settings: LedSection) -> None:
        self._settings = settings
        self._leds: dict[str, SysfsLed] = {}
        if settings.enabled:
            names = (settings.bicolour,) if settings.bicolour is not None else (settings.green, settings.red)
            self._leds = {name: SysfsLed(settings.leds_dir / name) for name in names if name is not None}
        self._shown: dict[str, LedSetting] = {}
        self._given_up: set[str] = set()

    def show(self, state: LedState) -> None:
        """Light the LED for `state`, writing only LEDs whose setting changed; never raises."""
        for name, setting in self._settings_for(state).items():
            if name in self._given_up or self._shown.get(name) == setting:
                continue
            try:
                self._leds[name].apply(setting, self._settings.blink_on_ms, self._settings.blink_off_ms)
            except OSError as exc:
                self._given_up.add(name)
                log.warning("led_unavailable", led=name, path=str(self._leds[name].directory), error=str(exc))
                continue
            self._shown[name] = setting

    def _settings_for(self, state: LedState) -> dict[str, LedSetting]:
        green, red = LIGHTS[state]
        settings = self._settings
        wanted: dict[str | None, LedSetting]
        if settings.bicolour is not None:
            lit = [mode for mode in (green, red) if mode != "off"]
            mode: Mode = "blink" if "blink" in lit else "on" if lit else "off"
            wanted = {settings.bicolour: LedSetting(mode, red=red != "off", green=green != "off")}
        else:
            wanted = {settings.green: LedSetting(green), settings.red: LedSetting(red)}
        return {name: setting for name, setting in wanted.items() if name is not None and name in self._leds}
