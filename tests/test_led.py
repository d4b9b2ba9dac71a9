"""The status LED against a fake sysfs tree: what each state writes, and that nothing is written without a change."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.led import LIGHTS, LedSection, LedState, StatusLed

UNTOUCHED = "untouched"
FILES = ("brightness", "trigger", "delay_on", "delay_off")


def fake_led(leds_dir: Path, name: str, *, max_brightness: int = 255, colours: str | None = None) -> Path:
    """An LED as the kernel lists it, with every file it may be given (the timer's appear only with the trigger
    on a real kernel; here they are always there)."""
    directory = leds_dir / name
    directory.mkdir(parents=True)
    (directory / "max_brightness").write_text(f"{max_brightness}\n")
    for file in FILES:
        (directory / file).write_text(UNTOUCHED)
    if colours is not None:
        (directory / "multi_index").write_text(f"{colours}\n")
        (directory / "multi_intensity").write_text(UNTOUCHED)
    return directory


def seen(directory: Path) -> dict[str, str]:
    """What the agent left in the LED's files (UNTOUCHED where it wrote nothing)."""
    names = [*FILES, "multi_intensity"] if (directory / "multi_index").exists() else list(FILES)
    return {name: (directory / name).read_text() for name in names}


def mark_untouched(*directories: Path) -> None:
    for directory in directories:
        for name in seen(directory):
            (directory / name).write_text(UNTOUCHED)


STEADY_ON = {"trigger": "none", "brightness": "255", "delay_on": UNTOUCHED, "delay_off": UNTOUCHED}
STEADY_OFF = {"trigger": "none", "brightness": "0", "delay_on": UNTOUCHED, "delay_off": UNTOUCHED}
BLINKING = {"trigger": "timer", "brightness": UNTOUCHED, "delay_on": "700", "delay_off": "300"}


@pytest.fixture
def pair(tmp_path: Path) -> tuple[StatusLed, Path, Path]:
    green = fake_led(tmp_path, "status:green")
    red = fake_led(tmp_path, "status:red")
    settings = LedSection(
        enabled=True, green="status:green", red="status:red", leds_dir=tmp_path, blink_on_ms=700, blink_off_ms=300
    )
    return StatusLed(settings), green, red


class TestGreenAndRed:
    @pytest.mark.parametrize(
        ("state", "green", "red"),
        [
            ("ok", STEADY_ON, STEADY_OFF),
            ("degraded", BLINKING, STEADY_OFF),
            ("fault", STEADY_OFF, STEADY_ON),
            ("starting", STEADY_ON, STEADY_ON),
            ("stopped", STEADY_OFF, STEADY_OFF),
        ],
    )
    def test_each_state_lights_what_the_readme_says(
        self,
        pair: tuple[StatusLed, Path, Path],
        state: LedState,
        green: dict[str, str],
        red: dict[str, str],
    ) -> None:
        """Steady green all well, blinking green buffering, steady red needs someone, amber starting, dark
        stopped; blinking is the kernel's timer trigger with the configured times."""
        led, green_dir, red_dir = pair
        led.show(state)
        assert (seen(green_dir), seen(red_dir)) == (green, red)

    def test_the_same_state_again_writes_nothing(self, pair: tuple[StatusLed, Path, Path]) -> None:
        """A box that stays well writes its LED once, not once a second."""
        led, green_dir, red_dir = pair
        led.show("ok")
        mark_untouched(green_dir, red_dir)
        for _ in range(3):
            led.show("ok")
        assert all(value == UNTOUCHED for value in [*seen(green_dir).values(), *seen(red_dir).values()])

    def test_a_change_writes_only_the_led_whose_setting_changed(self, pair: tuple[StatusLed, Path, Path]) -> None:
        """ok -> degraded -> ok: green goes blinking and back to steady; red stays off and is never rewritten."""
        led, green_dir, red_dir = pair
        led.show("ok")
        mark_untouched(green_dir, red_dir)
        led.show("degraded")
        assert seen(green_dir) == BLINKING
        assert set(seen(red_dir).values()) == {UNTOUCHED}
        led.show("ok")
        assert seen(green_dir)["trigger"] == "none" and seen(green_dir)["brightness"] == "255"
        assert set(seen(red_dir).values()) == {UNTOUCHED}

    def test_every_transition_ends_in_the_target_state(self, pair: tuple[StatusLed, Path, Path]) -> None:
        """From any state to any other, what the LEDs show is the target's row, whatever came before."""
        led, green_dir, red_dir = pair
        expected = {"on": STEADY_ON, "off": STEADY_OFF, "blink": BLINKING}
        for before in LIGHTS:
            for after in LIGHTS:
                led.show(before)
                led.show(after)
                green, red = LIGHTS[after]
                assert seen(green_dir)["trigger"] == expected[green]["trigger"], (before, after)
                assert seen(red_dir)["trigger"] == expected[red]["trigger"], (before, after)
                if green != "blink":
                    assert seen(green_dir)["brightness"] == expected[green]["brightness"], (before, after)
                if red != "blink":
                    assert seen(red_dir)["brightness"] == expected[red]["brightness"], (before, after)


class TestBicolour:
    def test_one_multicolour_led_mixes_the_same_states(self, tmp_path: Path) -> None:
        """A multicolour LED gets the colours in its own multi_index order: green, red, amber, dark."""
        directory = fake_led(tmp_path, "status", max_brightness=1, colours="green red")
        led = StatusLed(LedSection(enabled=True, bicolour="status", leds_dir=tmp_path))
        led.show("ok")
        assert (seen(directory)["multi_intensity"], seen(directory)["brightness"]) == ("1 0", "1")
        led.show("fault")
        assert (seen(directory)["multi_intensity"], seen(directory)["brightness"]) == ("0 1", "1")
        led.show("starting")
        assert seen(directory)["multi_intensity"] == "1 1"
        led.show("degraded")
        assert seen(directory)["multi_intensity"] == "1 0" and seen(directory)["trigger"] == "timer"
        mark_untouched(directory)
        led.show("stopped")
        assert seen(directory)["brightness"] == "0" and seen(directory)["multi_intensity"] == UNTOUCHED


class TestMissingLed:
    def test_a_missing_led_is_logged_once_and_the_other_still_works(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """No red LED on this box: one warning, then silence; the green one is driven as usual."""
        green_dir = fake_led(tmp_path, "status:green")
        led = StatusLed(LedSection(enabled=True, green="status:green", red="status:red", leds_dir=tmp_path))
        states: tuple[LedState, ...] = ("ok", "fault", "ok", "fault")
        with caplog.at_level(logging.WARNING, logger="agent.led"):
            for state in states:
                led.show(state)
        assert [record.getMessage() for record in caplog.records] == ["led_unavailable"]
        assert seen(green_dir)["brightness"] == "0"

    def test_disabled_writes_nothing(self, tmp_path: Path) -> None:
        """With [led] enabled = false the agent leaves the LEDs to whatever else drives them."""
        green_dir = fake_led(tmp_path, "status:green")
        StatusLed(LedSection(green="status:green", leds_dir=tmp_path)).show("fault")
        assert set(seen(green_dir).values()) == {UNTOUCHED}


class TestKernelBlinkTimes:
    def test_unset_blink_times_are_left_to_the_kernel(self, tmp_path: Path) -> None:
        """Without blink times only `trigger` is written to blink: the files a udev rule cannot reach in time
        (delay_on/delay_off appear with the trigger, owned by root) are never touched."""
        green_dir = fake_led(tmp_path, "status:green")
        StatusLed(LedSection(enabled=True, green="status:green", leds_dir=tmp_path)).show("degraded")
        assert seen(green_dir) == {**BLINKING, "delay_on": UNTOUCHED, "delay_off": UNTOUCHED}
