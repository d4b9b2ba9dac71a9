"""The simulated dispenser without I/O: one scripted fuelling, its registers at hand-written addresses, and
what each fault does to them.

Every test runs one nozzle on the same script: rest 1 s, lifted 1 s, 10 L at 60 L/min from second 2 to 12,
hung up for 5 s, and again, with the meter's quantisations off (`EXACT`: its noise is tested on its own). Time
moves only through `advance_to`, so every number here is exact.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from drivers.profile_validation import find_profile
from drivers.profiles import Profile, ProfileError, shipped_profile_dirs
from simulators.clock import SimClock
from simulators.faults import FaultError, ScheduledFault, make_fault
from simulators.forecourt import Dispenser, NozzleSpec, Sale
from simulators.fuelling import FuellingPattern
from simulators.meter import EXACT

SCRIPT = FuellingPattern(idle_s=(1, 1), lift_s=(1, 1), volume_l=(10, 10), flow_l_per_min=(60, 60), hang_up_s=(5, 5))
FIRST_SALE_BOOKED_S = 12.0
CYCLE_S = 17.0

CONTROLLER = 3  # holding registers
COUNTER = 4  # input registers
NOZZLE_1 = 0x0100


def profile(name: str) -> Profile:
    return find_profile(name, shipped_profile_dirs())


def dispenser(*, nozzles: int = 1, has_crc: bool = True, **spec: Any) -> Dispenser:
    fields = {"al_spread": 0.0, "first_txn_no": 41, "first_totalizer_ml": 1_000_000} | spec
    return Dispenser(
        "D01",
        [NozzleSpec("92", 770, **fields) for _ in range(nozzles)],
        profile("sim-pump-controller"),
        pulse_counter_profile=profile("sim-pulse-counter"),
        pattern=SCRIPT,
        rng=random.Random(1),
        has_crc=has_crc,
        meter=EXACT,
    )


def u32(registers: list[int], offset: int) -> int:
    return (registers[offset] << 16) | registers[offset + 1]


def nozzle_registers(model: Dispenser, number: int = 1) -> list[int]:
    return model.controller_bank(lambda: 0.0).read(CONTROLLER, NOZZLE_1 + (number - 1) * 0x20, 18)


def counts(model: Dispenser) -> list[int]:
    """Channels 1..8 of the pulse counter (input registers 0..7)."""
    return model.pulse_counter_bank(lambda: 0.0).read(COUNTER, 0, 8)


def controller_volume_ml(model: Dispenser) -> int:
    return u32(nozzle_registers(model), 8) * 10


def inject(model: Dispenser, kind: str, target: str, **params: object) -> None:
    model.inject(make_fault(kind, target, params, model.targets()), model.now_s)


class TestScriptedSale:
    def test_controller_registers_after_a_sale(self) -> None:
        """After the first sale the nozzle block holds state, price, number, volume (cL), money and totalizers,
        and the controller block its firmware id and K-factor, at the addresses the map documents."""
        model = dispenser()
        model.advance_to(FIRST_SALE_BOOKED_S + 0.5)
        registers = model.controller_bank(lambda: 0.0).read(CONTROLLER, 0x00FC, 4 + 18)
        assert registers[0] == 0x0102
        assert u32(registers, 1) == 10_000
        nozzle = registers[4:]
        assert nozzle[0] == 3  # finished
        assert nozzle[1] == 770
        assert u32(nozzle, 2) == 1000 and u32(nozzle, 4) == 7700  # current volume (cL), money (fen)
        assert u32(nozzle, 6) == 42
        assert u32(nozzle, 8) == 1000
        assert u32(nozzle, 10) == 7700
        assert nozzle[12] == 770
        assert u32(nozzle, 14) == (1_000_000 + 10_000) // 10
        assert u32(nozzle, 16) == 770_000 + 7700
        assert model.sales() == {"D01-N1": [Sale(42, 10_000, 10_000, 11_000)]}

    def test_pulse_counter_registers_after_a_sale(self) -> None:
        """Liquid pulses on channel 1 are the volume / 10 mL, vapour pulses on channel 2 the vapour / 10 mL;
        unwired channels read 0 and the firmware id sits at input register 15."""
        model = dispenser(nozzles=2)
        model.advance_to(FIRST_SALE_BOOKED_S + 0.5)
        registers = model.pulse_counter_bank(lambda: 0.0).read(COUNTER, 0, 16)
        assert registers[:4] == [1000, 1100, 1000, 1100]
        assert registers[4:15] == [0] * 11
        assert registers[15] == 0x0100

    def test_volumes_grow_linearly_while_fuelling(self) -> None:
        """Half-way through, the controller shows half the volume and the counter half the pulses."""
        model = dispenser()
        model.advance_to(7.0)
        registers = nozzle_registers(model)
        assert registers[0] == 2  # fuelling
        assert u32(registers, 2) == 500 and u32(registers, 6) == 41
        assert counts(model)[:2] == [500, 550]

    def test_liquid_count_wraps_at_65536(self) -> None:
        """A 16-bit counter wraps like the hardware: 66 sales of 10 L are 66,000 pulses, shown as 464."""
        model = dispenser()
        model.advance_to(FIRST_SALE_BOOKED_S + 65 * CYCLE_S + 0.5)
        assert len(model.sales()["D01-N1"]) == 66
        assert counts(model)[0] == 66_000 - 65_536

    def test_reads_advance_the_dispenser_to_the_clock(self) -> None:
        """A bank read first runs the dispenser up to its clock, and never backwards."""
        model = dispenser()
        clock = [FIRST_SALE_BOOKED_S + 0.5]
        bank = model.controller_bank(lambda: clock[0])
        assert u32(bank.read(CONTROLLER, NOZZLE_1, 18), 6) == 42
        clock[0] = 0.0
        assert u32(bank.read(CONTROLLER, NOZZLE_1, 18), 6) == 42 and model.now_s == FIRST_SALE_BOOKED_S + 0.5

    def test_meter_error_shows_in_the_controller_only(self) -> None:
        """A meter 0.3 % fast reports 10,030 mL for 10 L; the encoder still counts 1000 pulses."""
        model = dispenser(meter_error_ppm=3000)
        model.advance_to(FIRST_SALE_BOOKED_S + 0.5)
        assert controller_volume_ml(model) == 10_030
        assert counts(model)[0] == 1000

    def test_reserved_registers_read_zero_and_outside_the_map_is_refused(self) -> None:
        """Registers inside the map that hold nothing read zero (merged reads work); outside is exception 2;
        the registers cannot be written."""
        model = dispenser(nozzles=2)
        bank = model.controller_bank(lambda: 0.0)
        assert bank.read(CONTROLLER, NOZZLE_1 + 18, 14) == [0] * 14
        with pytest.raises(LookupError, match="holding register 0x0000 does not exist"):
            bank.read(CONTROLLER, 0x0000, 1)
        with pytest.raises(LookupError, match="read-only"):
            bank.write(NOZZLE_1, [1])

    def test_too_many_nozzles_for_the_counter_is_refused(self) -> None:
        """Five nozzles need ten channels; the 8-channel counter profile is refused with the numbers."""
        with pytest.raises(ProfileError, match="has 8 channels; dispenser D01's 5 nozzles need 10"):
            dispenser(nozzles=5)


class TestMeteringFaults:
    def test_pulse_injection(self) -> None:
        """With 1 % injection the controller reports 1.01 x pulses x 10 mL (within one cL); cleared, it agrees."""
        model = dispenser()
        inject(model, "pulse_injection", "D01-N1", percent=1.0)
        model.advance_to(FIRST_SALE_BOOKED_S + 0.5)
        pulses = counts(model)[0]
        assert abs(controller_volume_ml(model) - 1.01 * pulses * 10) <= 10
        model.clear("pulse_injection", "D01-N1", model.now_s)
        model.advance_to(FIRST_SALE_BOOKED_S + CYCLE_S + 0.5)
        assert controller_volume_ml(model) == (counts(model)[0] - pulses) * 10

    def test_injection_starts_at_its_moment_inside_a_fuelling(self) -> None:
        """Injection scheduled half-way through a sale inflates only the second half: 5 L + 5.05 L."""
        model = dispenser()
        fault = make_fault("pulse_injection", "D01-N1", {"percent": 1}, model.targets())
        model.schedule(ScheduledFault(fault, at_s=7.0))
        model.advance_to(FIRST_SALE_BOOKED_S + 0.5)
        assert controller_volume_ml(model) == 10_050

    def test_encoder_failure(self) -> None:
        """The liquid channel stops counting; the controller and the vapour channel carry on."""
        model = dispenser()
        inject(model, "encoder_failure", "D01-N1")
        model.advance_to(FIRST_SALE_BOOKED_S + 0.5)
        assert counts(model)[:2] == [0, 1100]
        assert controller_volume_ml(model) == 10_000

    def test_ghost_pulses_count_at_rest(self) -> None:
        """6 L/min of ghost flow while hung up adds 10 pulses a second; lifted or fuelling, it adds none."""
        model = dispenser()
        model.advance_to(FIRST_SALE_BOOKED_S)
        inject(model, "ghost_pulses", "D01-N1", l_per_min=6)
        model.advance_to(FIRST_SALE_BOOKED_S + 5 + 1)  # finished 5 s, idle 1 s
        assert counts(model)[0] == 1000 + 60
        model.advance_to(FIRST_SALE_BOOKED_S + 7)  # lifted
        assert counts(model)[0] == 1060
        assert [sale.txn_no for sale in model.sales()["D01-N1"]] == [42]

    def test_controller_reboot_resets_numbers_and_totalizers(self) -> None:
        """After a reboot the totalizers read 0 and the next sale is number 1, its volume the totalizer."""
        model = dispenser(nozzles=2)
        model.advance_to(FIRST_SALE_BOOKED_S + 0.5)
        inject(model, "controller_reboot", "D01/controller")
        for number in (1, 2):
            registers = nozzle_registers(model, number)
            assert u32(registers, 6) == 0 and u32(registers, 14) == 0 and u32(registers, 16) == 0
        model.advance_to(FIRST_SALE_BOOKED_S + CYCLE_S + 0.5)
        registers = nozzle_registers(model)
        assert u32(registers, 6) == 1 and u32(registers, 14) == 1000
        assert model.active_faults() == []

    def test_totalizer_tamper(self) -> None:
        """The volume totalizer jumps by 5 L with no sale; the next sale adds on top of the jump."""
        model = dispenser()
        model.advance_to(FIRST_SALE_BOOKED_S + 0.5)
        inject(model, "totalizer_tamper", "D01-N1", delta_ml=5000)
        registers = nozzle_registers(model)
        assert u32(registers, 14) == (1_000_000 + 10_000 + 5000) // 10 and u32(registers, 6) == 42
        model.advance_to(FIRST_SALE_BOOKED_S + CYCLE_S + 0.5)
        assert u32(nozzle_registers(model), 14) == (1_000_000 + 20_000 + 5000) // 10

    def test_skip_transactions(self) -> None:
        """Skipping 3 makes the next sale number 4 more than the last, then numbering goes on by one."""
        model = dispenser()
        model.advance_to(FIRST_SALE_BOOKED_S + 0.5)
        inject(model, "skip_transactions", "D01-N1", count=3)
        model.advance_to(FIRST_SALE_BOOKED_S + 2 * CYCLE_S + 0.5)
        assert [sale.txn_no for sale in model.sales()["D01-N1"]] == [42, 46, 47]

    def test_calibration_change_is_restored_when_cleared(self) -> None:
        """The K-factor register shows the new value while the fault is on and the original after."""
        model = dispenser()
        bank = model.controller_bank(lambda: 0.0)
        inject(model, "calibration_change", "D01/controller", k_factor=10_100)
        assert u32(bank.read(CONTROLLER, 0x00FD, 2), 0) == 10_100
        model.clear("calibration_change", "D01/controller", model.now_s)
        assert u32(bank.read(CONTROLLER, 0x00FD, 2), 0) == 10_000

    def test_firmware_change_on_each_device(self) -> None:
        """Firmware ids change per device: the controller's at 0x00FC, the counter's at input register 15."""
        model = dispenser()
        inject(model, "firmware_change", "D01/controller", firmware_id=0x0200)
        inject(model, "firmware_change", "D01/pulse_counter", firmware_id=0x0301)
        assert model.controller_bank(lambda: 0.0).read(CONTROLLER, 0x00FC, 1) == [0x0200]
        assert model.pulse_counter_bank(lambda: 0.0).read(COUNTER, 15, 1) == [0x0301]
        model.clear("firmware_change", "D01/controller", model.now_s)
        assert model.controller_bank(lambda: 0.0).read(CONTROLLER, 0x00FC, 1) == [0x0102]


class TestVapourFaults:
    def test_vapour_failure(self) -> None:
        """No vapour flows: the vapour channel stays still and the sale's vapour is 0 mL."""
        model = dispenser()
        inject(model, "vapour_failure", "D01-N1")
        model.advance_to(FIRST_SALE_BOOKED_S + 0.5)
        assert counts(model)[:2] == [1000, 0]
        assert model.sales()["D01-N1"][0].vapour_ml == 0

    def test_al_ratio(self) -> None:
        """At A/L 0.8, 10 L of fuel bring back 8 L of vapour: 800 pulses."""
        model = dispenser()
        inject(model, "al_ratio", "D01-N1", value=0.8)
        model.advance_to(FIRST_SALE_BOOKED_S + 0.5)
        assert counts(model)[1] == 800

    def test_al_noise_varies_each_fuelling_around_the_ratio(self) -> None:
        """With the default 1 % spread, fuellings' A/L scatter around 1.10 and stay close to it."""
        model = dispenser(al_spread=0.01)
        model.advance_to(FIRST_SALE_BOOKED_S + 49 * CYCLE_S + 0.5)
        ratios = [sale.vapour_ml / sale.real_volume_ml for sale in model.sales()["D01-N1"]]
        assert len(set(ratios)) > 40 and all(1.0 < r < 1.2 for r in ratios)
        assert abs(sum(ratios) / len(ratios) - 1.10) < 0.01


class TestLinkFaults:
    @pytest.mark.parametrize(
        ("has_crc", "expected"),
        [(True, (True, 0.25, 0.7, 0.0)), (False, (True, 0.25, 0.0, 0.7))],
    )
    def test_dead_slow_and_noise_reach_the_slave_faults(
        self, has_crc: bool, expected: tuple[bool, float, float, float]
    ) -> None:
        """dead, slow and crc_noise set the SlaveFaults the server reads (noise garbles TCP, which has no CRC),
        for that device only; clearing them restores the device."""
        model = dispenser(has_crc=has_crc)
        inject(model, "dead", "D01/pulse_counter")
        inject(model, "slow", "D01/pulse_counter", delay_s=0.25)
        inject(model, "crc_noise", "D01/pulse_counter", rate=0.7)
        link = model.link_faults["D01/pulse_counter"]
        assert (link.dead, link.delay_s, link.corrupt_crc_rate, link.garble_rate) == expected
        assert not model.link_faults["D01/controller"].dead
        for kind in ("dead", "slow", "crc_noise"):
            model.clear(kind, "D01/pulse_counter", model.now_s)
        assert (link.dead, link.delay_s, link.corrupt_crc_rate, link.garble_rate) == (False, 0.0, 0.0, 0.0)


class TestFaultRequests:
    TARGETS = dispenser().targets()

    @pytest.mark.parametrize(
        ("kind", "target", "params", "message"),
        [
            ("pulse_inject", "D01-N1", {}, "unknown fault kind 'pulse_inject'; kinds: al_ratio, calibration_change"),
            ("encoder_failure", "D09-N1", {}, "cannot target 'D09-N1' (no such target); it targets a nozzle: D01-N1"),
            ("controller_reboot", "D01-N1", {}, "cannot target 'D01-N1' (a nozzle); it targets a controller: D01/c"),
            ("pulse_injection", "D01-N1", {"pct": 1}, "pulse_injection has no param pct; its params: percent (float"),
            ("al_ratio", "D01-N1", {}, "al_ratio needs value (float 0.0..5.0, required)"),
            ("pulse_injection", "D01-N1", {"percent": "lots"}, "percent='lots' is not float"),
            ("skip_transactions", "D01-N1", {"count": 0}, "count=0 is outside 1..1000000"),
            ("skip_transactions", "D01-N1", {"count": 1.5}, "count=1.5 is not int"),
        ],
    )
    def test_bad_requests_name_what_is_allowed(
        self, kind: str, target: str, params: dict[str, object], message: str
    ) -> None:
        """Unknown kinds, targets and params, missing and bad values: the error lists what would do."""
        with pytest.raises(FaultError) as caught:
            make_fault(kind, target, params, self.TARGETS)
        assert message in str(caught.value)

    def test_params_from_a_command_line_are_converted(self) -> None:
        """String values become the param's type; defaults fill in what is not given."""
        assert make_fault("skip_transactions", "D01-N1", {"count": "3"}, self.TARGETS).params == {"count": 3}
        assert make_fault("slow", "D01/controller", {}, self.TARGETS).params == {"delay_s": 0.5}

    def test_one_shot_faults_cannot_have_an_end(self) -> None:
        """A reboot happens at at_s; giving it until_s is an error that says so."""
        fault = make_fault("controller_reboot", "D01/controller", {}, self.TARGETS)
        with pytest.raises(FaultError, match="one-shot: it happens at at_s and has no until_s"):
            ScheduledFault(fault, at_s=10, until_s=20)

    def test_clearing_a_fault_that_is_not_on_lists_those_that_are(self) -> None:
        """Clearing the wrong fault fails and names the faults that are on."""
        model = dispenser()
        inject(model, "encoder_failure", "D01-N1")
        with pytest.raises(FaultError, match="no vapour_failure fault is on D01-N1; on here: encoder_failure D01-N1"):
            model.clear("vapour_failure", "D01-N1", 0.0)


class TestClock:
    def test_scaled_time_stands_still_while_stopped(self) -> None:
        """At time scale 10, 3 real seconds running are 30 simulated ones; the 5 s stopped in between count 0."""
        real = [100.0]
        clock = SimClock(10.0, monotonic=lambda: real[0])
        assert clock() == 0.0
        clock.start()
        real[0] = 101.0
        clock.stop()
        real[0] = 106.0
        assert clock() == 10.0
        clock.start()
        real[0] = 108.0
        assert clock() == 30.0
