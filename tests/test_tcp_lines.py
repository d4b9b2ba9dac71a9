"""All Modbus TCP lines served by one thread, against real TCP endpoints: simulated controllers, and peers that keep
silent, refuse, never finish the handshake, answer late, garbled or a byte at a time."""

from __future__ import annotations

import itertools
import random
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.waiting import wait_until

from agent.clock import Clock, ScaledClock, SystemClock
from agent.contract.records import RecordIntent
from agent.field.events import DeviceOffline, DeviceOnline, DeviceReading, FieldEvent
from agent.field.lines import Field, build_field
from agent.field.tcp_lines import GATHER_S, THREAD_NAME
from drivers.device import DeviceDriver
from drivers.errors import FieldFrameError
from drivers.line_settings import DeviceSection, TcpLineSection
from drivers.modbus import tcp
from drivers.modbus.master import TcpMaster
from drivers.modbus.pdu import decode_request, encode_read_response
from drivers.profile_validation import load_profile
from drivers.profiles import Profile
from drivers.readings import Reading
from simulators.clock import SimClock
from simulators.forecourt import Dispenser, NozzleSpec
from simulators.modbus_slave import SlaveFaults, TcpSlaveServer

PROFILE = Path(__file__).resolve().parents[1] / "config" / "profiles" / "sim-pump-controller.toml"
INTERVAL_MS = 50


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[float, FieldEvent]] = []
        self.hand_overs = 0
        self._lock = threading.Lock()

    def __call__(self, events: Sequence[FieldEvent]) -> None:
        now = time.monotonic()
        with self._lock:
            self.events.extend((now, event) for event in events)
            self.hand_overs += 1

    def times(self, kind: type, device: str) -> list[float]:
        with self._lock:
            return [at for at, event in self.events if isinstance(event, kind) and event.device == device]

    def reading_times_ms(self, device: str) -> list[int]:
        """When the device's readings were taken (their `ts_ms`), in order."""
        with self._lock:
            return [
                event.ts_ms for _, event in self.events if isinstance(event, DeviceReading) and event.device == device
            ]


@dataclass
class Rig:
    field: Field
    sink: Sink
    reports: list[RecordIntent]

    def status(self, line: str) -> tuple[int, int]:
        """(polls, failed polls) of the line's one device."""
        (poller,) = [poller for poller in self.field.pollers if poller.line == line]
        (device,) = poller.status().devices
        return device.polls, device.failed_polls


def controller_server(unit: int, faults: SlaveFaults | None = None) -> TcpSlaveServer:
    clock = SimClock(20)
    clock.start()
    dispenser = Dispenser(f"D{unit}", [NozzleSpec("92", 770)], load_profile(PROFILE), rng=random.Random(unit))
    return TcpSlaveServer({unit: dispenser.controller_bank(clock)}, faults={unit: faults or SlaveFaults()})


def line(name: str, port: int, unit: int = 1, timeout_ms: int = 300, host: str = "127.0.0.1") -> TcpLineSection:
    device = DeviceSection(name=f"{name}-pc", unit=unit, profile="sim-pump-controller", poll_interval_ms=INTERVAL_MS)
    return TcpLineSection(kind="tcp", name=name, host=host, port=port, timeout_ms=timeout_ms, devices=(device,))


@contextmanager
def polling(
    lines: list[TcpLineSection], clock: Clock | None = None, drivers: dict[str, DeviceDriver] | None = None
) -> Iterator[Rig]:
    """The lines' pollers built as the agent builds them, on the system clock unless `clock` is given, running;
    each device's driver the pump controller's unless `drivers` names it."""
    profile = load_profile(PROFILE)
    drivers = {device.name: DeviceDriver(profile, [1]) for section in lines for device in section.devices} | (
        drivers or {}
    )
    sink = Sink()
    reports: list[RecordIntent] = []
    field = build_field(
        lines,
        drivers,
        clock or SystemClock(),
        sink,
        health_every_s=10.0,
        zone=ZoneInfo("UTC"),
        report=reports.append,
    )
    for thread in field.threads:
        thread.start()
    try:
        yield Rig(field, sink, reports)
    finally:
        assert all(thread.stop(5.0) for thread in field.threads)


@contextmanager
def listening(take: Callable[[socket.socket], None], name: str) -> Iterator[int]:
    """A loopback listener that hands each connection it accepts to `take` until the end; its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            take(connection)

    thread = threading.Thread(target=serve, name=name)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        done.set()
        thread.join(5)
        listener.close()


@contextmanager
def silent_endpoint() -> Iterator[int]:
    """A peer that takes connections and requests and never answers."""
    held: list[socket.socket] = []
    try:
        with listening(held.append, "silent-endpoint") as port:
            yield port
    finally:
        for connection in held:
            connection.close()


def refused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def test_every_tcp_line_is_served_by_one_thread_and_each_device_is_read() -> None:
    """Three Modbus TCP endpoints: one thread serves all three, each device comes online and is read at about its
    interval, their events reach the station in shared hand-overs, and nothing is an internal error."""
    with ExitStack() as stack:
        servers = [stack.enter_context(controller_server(unit)) for unit in (1, 2, 3)]
        lines = [line(f"tcp-{index}", server.address[1], unit=index) for index, server in enumerate(servers, 1)]
        rig = stack.enter_context(polling(lines))
        assert [thread.name for thread in rig.field.threads] == [THREAD_NAME]
        wait_until(
            lambda: all(len(rig.sink.times(DeviceReading, f"tcp-{i}-pc")) >= 20 for i in (1, 2, 3)), 10, "readings"
        )
        running = {thread.name for thread in threading.enumerate()}
        assert THREAD_NAME in running
        assert not any(name.startswith("poller-tcp-") for name in running), "no thread of a line's own"
        for index in (1, 2, 3):
            assert len(rig.sink.times(DeviceOnline, f"tcp-{index}-pc")) == 1
            polls, failed = rig.status(f"tcp-{index}")
            assert polls >= 20 and failed == 0
        readings = sum(len(rig.sink.times(DeviceReading, f"tcp-{i}-pc")) for i in (1, 2, 3))
        assert rig.sink.hand_overs < readings, "lines due together are handed over together"
    assert not rig.reports


class FailingDecoder(DeviceDriver):
    """A decoder with a bug: every answer it is given raises."""

    def reading_of(self, unit: int, answers: tuple[tuple[int, ...], ...]) -> Reading:
        raise RuntimeError(f"decoder bug on unit {unit}")


def test_a_poll_that_fails_unexpectedly_is_contained_and_its_line_paused_longer_each_time() -> None:
    """A device whose answers make its decoder raise: each poll is an internal error of its line's boundary (one
    record, the rest counted into the next), the line waits longer after each (0.1, 0.2, 0.4, 0.8 s) rather than
    polling at its interval, and the healthy line beside it and the thread go on."""
    with ExitStack() as stack:
        good, bad = (stack.enter_context(controller_server(unit)) for unit in (1, 2))
        lines = [line("good", good.address[1], unit=1), line("bad", bad.address[1], unit=2)]
        drivers = {"bad-pc": FailingDecoder(load_profile(PROFILE), [1])}
        rig = stack.enter_context(polling(lines, drivers=drivers))
        time.sleep(1.6)
        (bad_line,) = [poller for poller in rig.field.pollers if poller.line == "bad"]
        asked = bad_line.status().bus.requests
        assert 3 <= asked <= 7, f"{asked} polls in 1.6 s: one at 0, 0.1, 0.3, 0.7 and 1.5 s, not one every 0.1 s"
        assert len(rig.sink.times(DeviceReading, "good-pc")) >= 15
        assert not rig.sink.times(DeviceReading, "bad-pc")
        assert all(thread.alive() for thread in rig.field.threads)
    assert [(intent.body.item, intent.body.error) for intent in rig.reports] == [  # type: ignore[attr-defined]
        ("poll bad-pc", "RuntimeError")
    ]


class TornAnswerDecoder(DeviceDriver):
    """A decoder that finds every other answer it is given inconsistent, as a driver that checks a block read
    across a device's update would: a failed exchange (a `FieldError`), as when `read` raises it."""

    def __init__(self, profile: Profile, indices: Iterable[int]) -> None:
        super().__init__(profile, indices)
        self.decoded = itertools.count()

    def reading_of(self, unit: int, answers: tuple[tuple[int, ...], ...]) -> Reading:
        if next(self.decoded) % 2 == 0:
            raise FieldFrameError(f"unit {unit}: torn answer")
        return super().reading_of(unit, answers)


def test_answers_the_driver_finds_inconsistent_are_a_failed_try_tried_again_not_an_internal_error() -> None:
    """A driver that raises a field error on the answers of every poll's first try: the poll is tried again, as a
    line read by waiting tries it, and its second try's reading is taken at the device's interval; no poll fails,
    the device never goes offline and its boundary records nothing."""
    with controller_server(1) as server:
        drivers = {"torn-pc": TornAnswerDecoder(load_profile(PROFILE), [1])}
        with polling([line("torn", server.address[1])], drivers=drivers) as rig:
            time.sleep(1.0)
            polls, failed = rig.status("torn")
    assert 15 <= polls <= 21, f"{polls} polls in 1 s at 50 ms"
    assert failed == 0
    assert len(rig.sink.times(DeviceReading, "torn-pc")) >= 15
    assert not rig.sink.times(DeviceOffline, "torn-pc")
    assert not rig.reports


def test_lines_answering_together_keep_every_device_at_its_interval() -> None:
    """Six endpoints of two controllers each, every device polled every 50 ms: the lines' answers come in together
    and are taken together (`GATHER_S`), and each device is still read every 50 ms on average, without one failed
    poll."""
    profile = load_profile(PROFILE)
    clock = SimClock(20)
    clock.start()
    with ExitStack() as stack:
        lines = []
        for number in range(1, 7):
            dispensers = {unit: Dispenser(f"D{number}-{unit}", [NozzleSpec("92", 770)], profile) for unit in (1, 11)}
            banks = {unit: dispenser.controller_bank(clock) for unit, dispenser in dispensers.items()}
            server = stack.enter_context(TcpSlaveServer(banks))
            devices = tuple(
                DeviceSection(
                    name=f"tcp-{number}-pc{unit}",
                    unit=unit,
                    profile="sim-pump-controller",
                    poll_interval_ms=INTERVAL_MS,
                )
                for unit in (1, 11)
            )
            lines.append(
                TcpLineSection(
                    kind="tcp",
                    name=f"tcp-{number}",
                    host="127.0.0.1",
                    port=server.address[1],
                    timeout_ms=1000,
                    devices=devices,
                )
            )
        rig = stack.enter_context(polling(lines))
        names = [device.name for section in lines for device in section.devices]
        wait_until(lambda: all(len(rig.sink.reading_times_ms(name)) >= 42 for name in names), 20, "42 readings of each")
        for name in names:
            taken_ms = rig.sink.reading_times_ms(name)[1:42]  # from the first poll on a connection made
            mean_gap_ms = (taken_ms[-1] - taken_ms[0]) / (len(taken_ms) - 1)
            assert INTERVAL_MS * 0.9 <= mean_gap_ms <= INTERVAL_MS * 1.1, f"{name} read every {mean_gap_ms:.1f} ms"
        assert all(device.failed_polls == 0 for poller in rig.field.pollers for device in poller.status().devices)
    assert not rig.reports


def test_under_accelerated_station_time_a_device_still_has_its_timeout_in_real_time() -> None:
    """With the station's clock running 20 times as fast (the demo's accelerated time), the schedule follows the
    station's clock but a device still has its 300 ms to answer in real time: two controllers on one endpoint are
    read without one failed poll."""
    profile = load_profile(PROFILE)
    clock = SimClock(20)
    clock.start()
    banks = {
        unit: Dispenser(f"D{unit}", [NozzleSpec("92", 770)], profile, rng=random.Random(unit)).controller_bank(clock)
        for unit in (1, 11)
    }
    with TcpSlaveServer(banks) as server:
        devices = tuple(
            DeviceSection(name=f"pc{unit}", unit=unit, profile="sim-pump-controller", poll_interval_ms=2000)
            for unit in (1, 11)
        )
        section = TcpLineSection(
            kind="tcp", name="tcp-1", host="127.0.0.1", port=server.address[1], timeout_ms=300, devices=devices
        )
        with polling([section], ScaledClock(20, SystemClock())) as rig:
            wait_until(
                lambda: all(len(rig.sink.times(DeviceReading, f"pc{unit}")) >= 10 for unit in (1, 11)),
                10,
                "ten readings of each",
            )
            (poller,) = rig.field.pollers
            assert all(device.failed_polls == 0 for device in poller.status().devices)
            assert poller.status().bus.timeouts == 0


def test_a_silent_a_refusing_and_a_half_open_endpoint_cost_the_healthy_line_nothing() -> None:
    """Beside a healthy line: a peer that never answers (1 s timeout), a port that refuses, and one whose
    handshake never completes (its backlog is full). Each fails on its own line, as its own kind of failure; the
    healthy device's readings never pause for them (a thread that waited for each in turn would pause a second)."""
    with ExitStack() as stack:
        healthy = stack.enter_context(controller_server(1))
        silent = stack.enter_context(silent_endpoint())
        half_open = socket.create_server(("127.0.0.1", 0), backlog=0)
        stack.callback(half_open.close)
        filler = socket.create_connection(half_open.getsockname())  # fills the backlog of one
        stack.callback(filler.close)
        lines = [
            line("healthy", healthy.address[1]),
            line("silent", silent, timeout_ms=1000),
            line("refused", refused_port(), timeout_ms=1000),
            line("half-open", half_open.getsockname()[1], timeout_ms=1000),
        ]
        rig = stack.enter_context(polling(lines))
        wait_until(lambda: bool(rig.sink.times(DeviceOffline, "silent-pc")), 15, "the silent device to go offline")
        wait_until(lambda: rig.status("half-open")[1] >= 3, 10, "the half-open endpoint's failures")
        by_line = {poller.line: poller.status() for poller in rig.field.pollers}
    readings = rig.sink.times(DeviceReading, "healthy-pc")
    gaps = [later - earlier for earlier, later in itertools.pairwise(readings)]
    assert len(readings) >= 40
    assert max(gaps) < 0.5, f"the healthy line paused {max(gaps):.2f} s"
    assert by_line["silent"].bus.timeouts >= 3
    assert by_line["refused"].bus.link_errors >= 3 and by_line["refused"].bus.timeouts == 0
    assert by_line["half-open"].bus.link_errors >= 3
    assert "no connection within 1.0 s" in str(by_line["half-open"].devices[0].last_error)
    assert by_line["healthy"].bus.requests == by_line["healthy"].bus.ok
    assert not rig.reports


def test_late_and_garbled_answers_are_failures_of_their_kind_and_never_taken_for_the_next() -> None:
    """A device that answers after the timeout, and one whose answers are garbled: each poll fails as a timeout
    or a frame error, no reading is made of either, and once they answer well again their readings resume."""
    late_faults = SlaveFaults(delay_s=0.4)
    garbled_faults = SlaveFaults(garble_rate=1.0)
    with controller_server(1, late_faults) as late, controller_server(2, garbled_faults) as garbled:
        with polling([line("late", late.address[1], 1, 200), line("garbled", garbled.address[1], 2, 200)]) as rig:
            wait_until(lambda: rig.status("late")[1] >= 2 and rig.status("garbled")[1] >= 2, 10, "failed polls")
            assert not rig.sink.times(DeviceReading, "late-pc")
            assert not rig.sink.times(DeviceReading, "garbled-pc")
            by_line = {poller.line: poller.status().bus for poller in rig.field.pollers}
            assert by_line["late"].timeouts >= 2 and by_line["late"].ok == 0
            assert by_line["garbled"].ok == 0 and by_line["garbled"].timeouts == 0
            late.faults[1].delay_s = 0.0
            garbled.faults[2].garble_rate = 0.0
            wait_until(
                lambda: rig.sink.times(DeviceReading, "late-pc") and rig.sink.times(DeviceReading, "garbled-pc"),
                15,
                "readings once both answer well",
            )
        assert not rig.reports


def test_an_answer_that_arrives_a_byte_at_a_time_is_read_whole() -> None:
    """A peer that sends each answer one byte at a time, 5 ms apart, within the timeout: the answer is put
    together across many wake-ups and the reading is the registers the peer sent."""
    profile = load_profile(PROFILE)
    (request,) = DeviceDriver(profile, [1]).requests
    registers = tuple(range(request.count))
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()
    answered = []

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(5)
            while not done.is_set():
                head = connection.recv(tcp.MBAP_BYTES)
                if len(head) < tcp.MBAP_BYTES:
                    return
                header = tcp.decode_header(head)
                asked = decode_request(connection.recv(header.pdu_length))
                assert asked.function == request.function
                answer = tcp.encode_adu(header.transaction_id, header.unit, encode_read_response(3, registers))
                try:
                    for byte in answer:
                        connection.sendall(bytes([byte]))
                        time.sleep(0.005)
                except OSError:  # the agent hung up (its stop)
                    return
                answered.append(header.transaction_id)

    server = threading.Thread(target=trickle, name="trickling-endpoint")
    server.start()
    try:
        with polling([line("trickle", listener.getsockname()[1], timeout_ms=1000)]) as rig:
            wait_until(lambda: len(answered) >= 2, 10, "two trickled answers")
            wait_until(lambda: bool(rig.sink.times(DeviceReading, "trickle-pc")), 5, "the reading")
            assert rig.status("trickle")[1] == 0, "no poll failed"
    finally:
        done.set()
        listener.close()
        server.join(10)


def test_the_thread_stops_at_once_with_requests_in_flight() -> None:
    """A stop while a request waits for a peer that never answers (30 s timeout) ends the thread within a turn."""
    with silent_endpoint() as port:
        profile = load_profile(PROFILE)
        lines = [line("silent", port, timeout_ms=30_000)]
        field = build_field(
            lines,
            {"silent-pc": DeviceDriver(profile, [1])},
            SystemClock(),
            lambda _events: None,
            health_every_s=10.0,
            zone=ZoneInfo("UTC"),
            report=lambda _intent: None,
        )
        (thread,) = field.threads
        thread.start()
        time.sleep(0.3)  # the request is in flight by now: the behaviour under test is a stop during it
        started = time.monotonic()
        assert thread.stop(5.0)
        assert time.monotonic() - started < 1.0


def stale(header: tcp.MbapHeader) -> bytes:
    """The answer with the previous request's transaction id."""
    previous = (header.transaction_id - 1) & 0xFFFF
    return tcp.encode_adu(previous, header.unit, encode_read_response(3, (0,) * REGISTERS))


def trailing(header: tcp.MbapHeader) -> bytes:
    """A right answer with three more bytes after it."""
    return (
        tcp.encode_adu(header.transaction_id, header.unit, encode_read_response(3, (0,) * REGISTERS)) + b"\x00\x01\x02"
    )


REGISTERS = DeviceDriver(load_profile(PROFILE), [1]).requests[0].count


@pytest.mark.parametrize(("answer", "words"), [(stale, "transaction id"), (trailing, "3 bytes more than")])
def test_an_answer_that_is_not_the_one_asked_for_drops_the_connection(
    answer: Callable[[tcp.MbapHeader], bytes], words: str
) -> None:
    """A peer that answers with another request's transaction id, or with bytes after its answer: each answer is a
    frame error, the connection is made again, and no reading is made of it."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()
    connections = []

    def serve() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connections.append(connection)
            connection.settimeout(2)
            head = connection.recv(tcp.MBAP_BYTES)
            if len(head) < tcp.MBAP_BYTES:
                continue
            header = tcp.decode_header(head)
            connection.recv(header.pdu_length)
            connection.sendall(answer(header))

    server = threading.Thread(target=serve, name="wrong-endpoint")
    server.start()
    try:
        with polling([line("wrong", listener.getsockname()[1], timeout_ms=500)]) as rig:
            wait_until(lambda: rig.status("wrong")[1] >= 2, 10, "failed polls")
            (poller,) = rig.field.pollers
            assert words in str(poller.status().devices[0].last_error)
            assert poller.status().bus.frame_errors >= 2 and poller.status().bus.ok == 0
            assert not rig.sink.times(DeviceReading, "wrong-pc")
            assert len(connections) >= 3, "each broken answer costs the connection"
    finally:
        done.set()
        server.join(5)
        for connection in connections:
            connection.close()
        listener.close()


SLOW_NAME = "slow-resolver.test"
LOOKUP_S = 1.5


def test_a_host_name_whose_lookup_is_slow_costs_the_other_lines_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines whose host is a name the resolver takes 1.5 s to answer (a station's DNS server behind a slow
    uplink; this machine's resolver cannot be made slow, so its answer is delayed here), one of them refusing so
    that each poll looks the name up again, beside a healthy line: the healthy device's readings never pause for a
    lookup, a poll that outlasts one fails as a link error, and once the name is looked up its line is read."""
    resolve = socket.getaddrinfo

    def slow_resolver(host: str, *args: object, **kwargs: object) -> object:
        if host != SLOW_NAME or int(kwargs.get("flags", 0)) & socket.AI_NUMERICHOST:  # type: ignore[call-overload]
            return resolve(host, *args, **kwargs)  # type: ignore[arg-type]
        time.sleep(LOOKUP_S)
        return resolve("127.0.0.1", *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", slow_resolver)
    with controller_server(1) as healthy, controller_server(2) as named:
        lines = [
            line("healthy", healthy.address[1]),
            line("named", named.address[1], 2, 1000, host=SLOW_NAME),
            line("named-refused", refused_port(), timeout_ms=1000, host=SLOW_NAME),
        ]
        with polling(lines) as rig:
            wait_until(lambda: bool(rig.sink.times(DeviceReading, "named-pc")), 10, "the named line's reading")
            wait_until(lambda: rig.status("named-refused")[1] >= 2, 15, "the refused named line's failed polls")
            refused = next(poller.status() for poller in rig.field.pollers if poller.line == "named-refused")
    readings = rig.sink.times(DeviceReading, "healthy-pc")
    gaps = [later - earlier for earlier, later in itertools.pairwise(readings)]
    assert max(gaps) < 0.5, f"the healthy line paused {max(gaps):.2f} s"
    assert readings[0] < rig.sink.times(DeviceReading, "named-pc")[0], "the healthy line waited for the lookup"
    assert refused.bus.link_errors >= 2 and refused.bus.timeouts == 0
    assert not rig.reports


DUAL_STACK_NAME = "dual-stack.test"


def test_a_name_whose_first_address_refuses_is_connected_at_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host name that resolves to ::1 first and 127.0.0.1 second (as `localhost` does on a dual-stack box), with
    the device listening on IPv4 only (a local Modbus gateway bound to 0.0.0.0): the blocking master, which tries
    each address in turn, reads it, and so does the thread of all TCP lines, with no failed poll."""
    resolve = socket.getaddrinfo

    def dual_stack(host: str, port: int, *args: object, **kwargs: object) -> object:
        if host != DUAL_STACK_NAME or int(kwargs.get("flags", 0)) & socket.AI_NUMERICHOST:  # type: ignore[call-overload]
            return resolve(host, port, *args, **kwargs)  # type: ignore[arg-type]
        return resolve("::1", port, *args, **kwargs) + resolve("127.0.0.1", port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", dual_stack)
    with controller_server(1) as server:
        port = server.address[1]
        (request,) = DeviceDriver(load_profile(PROFILE), [1]).requests
        blocking = TcpMaster(DUAL_STACK_NAME, port, timeout_s=1.0)
        try:
            reference = blocking.read_registers(1, request.function, request.address, request.count)
        finally:
            blocking.close()
        assert len(reference) == request.count
        with polling([line("dual", port, timeout_ms=1000, host=DUAL_STACK_NAME)]) as rig:
            wait_until(lambda: len(rig.sink.times(DeviceReading, "dual-pc")) >= 3, 10, "readings")
            assert rig.status("dual")[1] == 0, rig.field.pollers[0].status().devices[0].last_error
    assert not rig.reports


def test_a_dead_endpoint_in_flight_holds_no_answer_of_a_healthy_line() -> None:
    """Beside a peer that never answers (its request in flight all along), eight controllers on one endpoint, due
    together, are read as on a line alone: each answer is taken as it comes, not held for answers to gather it with
    (`GATHER_S`), so the eighth is read less than seven holds after the first, and no poll fails."""
    profile = load_profile(PROFILE)
    clock = SimClock(20)
    clock.start()
    units = range(1, 9)
    banks = {
        unit: Dispenser(f"D{unit}", [NozzleSpec("92", 770)], profile, rng=random.Random(unit)).controller_bank(clock)
        for unit in units
    }
    with TcpSlaveServer(banks) as server, silent_endpoint() as silent:
        devices = tuple(
            DeviceSection(name=f"pc{unit}", unit=unit, profile="sim-pump-controller", poll_interval_ms=100)
            for unit in units
        )
        lines = [
            TcpLineSection(
                kind="tcp", name="busy", host="127.0.0.1", port=server.address[1], timeout_ms=1000, devices=devices
            ),
            line("silent", silent, timeout_ms=30_000),
        ]
        with polling(lines) as rig:
            wait_until(lambda: len(rig.sink.reading_times_ms("pc8")) >= 16, 10, "sixteen rounds of readings")
            (busy, _) = rig.field.pollers
            assert all(device.failed_polls == 0 for device in busy.status().devices)
            first, last = rig.sink.reading_times_ms("pc1"), rig.sink.reading_times_ms("pc8")
    spreads_ms = [late - early for early, late in zip(first[1:16], last[1:16], strict=True)]
    holds_ms = (len(units) - 1) * GATHER_S * 1000
    assert statistics.median(spreads_ms) < holds_ms, f"the eighth read {spreads_ms} ms after the first"
