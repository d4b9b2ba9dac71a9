"""One tank's books: what it holds, what arrived, what was sold from it, and what is missing.

Theory of operation. Every gauge (or level-probe) reading becomes a `Level`: the volume at the fuel's
temperature and at 20 degC (GB/T 1885), heights and temperature. Sales reach the tank from the nozzles that
draw on it, converted to 20 degC at the tank's temperature. The tank's books close every hour and every
local day at the first reading past the boundary: opening and closing volume at 20 degC, what was delivered
and sold in between, and the variance, `opening - closing + delivered - sold`, whose running total grows
if fuel leaves the tank without a sale.

Deliveries come from the gauge's own reports when it makes them (Veeder-Root i202), or are seen by the
agent as a rise that sales do not explain (a level probe reports no deliveries). A gauge reports a delivery
only some minutes after the fuel stopped rising, so the agent watches every tank's level for a rise itself:
while one is under way, or has settled but the gauge has not reported it yet, the books stay open past
their boundary. Otherwise a delivery seen in the level of one hour but booked in the next would show as a
large loss followed by an equal gain. A gauge that never reports a rise it showed gets it recorded as
`detected` after `delivery_report_wait_s`. A delivery the agent watched rise goes into the books it held open;
one it did not (it was down) only into books opened before the gauge says it ended.

Inventory records go out on a fixed interval and whenever the contents change notably. The hourly books
feed a statistical detector (agent.station.leak) that tells a leak from unrecorded sales.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from agent.contract.records import (
    Cursor,
    DeliveryBody,
    ReconciliationBody,
    RecordIntent,
    TankInventoryBody,
    format_ts,
    parse_ts,
)
from agent.station.bindings import TankBinding
from agent.station.localday import LocalDays
from agent.station.settings import TankRulesSection
from drivers.readings import DeliveryReport, LevelProbeReading, TankReading

_HOUR_MS = 3_600_000
_GAP_MS = 600_000
"""A silence longer than this in the readings makes the period's books incomplete."""


@dataclass(frozen=True, slots=True)
class Level:
    """One look at the tank, in integer small units."""

    ts_ms: int
    volume_ml: int
    volume_20_ml: int
    height_um: int
    water_um: int
    temperature_cC: int
    ullage_ml: int
    delivery_in_progress: bool


@dataclass(slots=True)
class _Books:
    """The books of one period, open."""

    period: str
    start_ms: int
    end_ms: int
    opening: Level
    delivered_20_ml: int = 0
    sold_20_ml: int = 0
    sales: int = 0
    complete: bool = True
    temperature_sum_cC: int = 0
    readings: int = 0


@dataclass(slots=True)
class _Rise:
    """A delivery the agent is watching arrive: from the last level at rest, net of sales meanwhile."""

    start: Level
    peak: Level
    sold_20_ml: int = 0
    sold_to_peak_20_ml: int = 0
    settled_ms: int | None = None


class TankTracker:
    def __init__(
        self, binding: TankBinding, cursors: dict[str, int], rules: TankRulesSection, days: ZoneInfo | LocalDays
    ) -> None:
        """`days`: the station's days, or a zone whose days begin at midnight."""
        self.binding = binding
        self._rules = rules
        self._days = days if isinstance(days, LocalDays) else LocalDays(days)
        self._cumulative_ml = cursors.get(binding.cursor_key("cumulative_variance_ml"), 0)
        self._deliveries_seen_to_ms = cursors.get(binding.cursor_key("gauge_deliveries_to_ms"), 0)
        self._last: Level | None = None
        self._reported: Level | None = None
        self._books: dict[str, _Books] = {}
        self._recent_sales: deque[tuple[int, int]] = deque()
        self._rise: _Rise | None = None
        self._rest: Level | None = None
        self.gauge_reports_deliveries = True
        """False while the tank's gauge refuses its delivery report (i202): rises are then booked at once."""

    @property
    def reports_deliveries(self) -> bool:
        """A gauge keeps its own delivery records, unless it refuses its delivery report; a level probe does not."""
        return self.binding.gauge_tank is not None and self.gauge_reports_deliveries

    # -- what the devices say ----------------------------------------------------------------------------------

    def from_gauge(self, reading: TankReading, ts_ms: int) -> Level:
        fuel = self.binding.fuel
        return Level(
            ts_ms=ts_ms,
            volume_ml=reading.volume_ml,
            volume_20_ml=fuel.to_20(reading.volume_ml, reading.temperature_cC),
            height_um=reading.height_um,
            water_um=reading.water_um,
            temperature_cC=reading.temperature_cC,
            ullage_ml=reading.ullage_ml
            if reading.ullage_ml is not None
            else self.binding.capacity_ml - reading.volume_ml,
            delivery_in_progress=reading.delivery_in_progress,
        )

    def from_probe(self, reading: LevelProbeReading, ts_ms: int) -> Level:
        chart = self.binding.chart
        assert chart is not None, "a probe-measured tank has a chart (checked in the config)"
        fuel = self.binding.fuel
        total = chart.volume_ml(reading.oil_height_um)
        water = chart.volume_ml(reading.water_height_um)
        volume = max(0, total - water)
        return Level(
            ts_ms=ts_ms,
            volume_ml=volume,
            volume_20_ml=fuel.to_20(volume, reading.temperature_cC),
            height_um=reading.oil_height_um,
            water_um=reading.water_height_um,
            temperature_cC=reading.temperature_cC,
            ullage_ml=chart.capacity_ml - total,
            delivery_in_progress=self._rise is not None,
        )

    def observe(self, level: Level) -> list[RecordIntent]:
        """A new look at the tank: a delivery seen, books that close, an inventory record if due."""
        intents = self._watch_rise(level)
        intents += self._close_books(level)
        intents += self._inventory(level)
        self._last = level
        return intents

    def on_sale(self, volume_ml: int, ts_ms: int) -> None:
        """A sale from a nozzle on this tank, at ambient volume; booked at 20 degC at the tank's temperature."""
        temperature = self._last.temperature_cC if self._last is not None else 1500
        sold_20 = self.binding.fuel.to_20(volume_ml, temperature)
        for books in self._books.values():
            books.sold_20_ml += sold_20
            books.sales += 1
        if self._rise is not None:
            self._rise.sold_20_ml += sold_20
        self._recent_sales.append((ts_ms, sold_20))
        horizon = ts_ms - 2 * 86_400_000
        while self._recent_sales and self._recent_sales[0][0] < horizon:
            self._recent_sales.popleft()

    def on_gauge_deliveries(self, reports: tuple[DeliveryReport, ...]) -> list[RecordIntent]:
        """Deliveries the gauge reports that are not on record yet, each recorded once."""
        intents: list[RecordIntent] = []
        fuel = self.binding.fuel
        for report in sorted(reports, key=lambda r: r.end_ts):
            end_ms = parse_ts(report.end_ts)
            if end_ms <= self._deliveries_seen_to_ms:
                continue
            start_20 = fuel.to_20(report.start_volume_ml, report.start_temperature_cC)
            end_20 = fuel.to_20(report.end_volume_ml, report.end_temperature_cC)
            rise, self._rise = self._rise, None
            # The gauge's clock is its own and may be minutes off: a rise the agent watched places the delivery
            # (the books were held open for it) and counts the sales during it, up to the level's peak, by the
            # agent's clock.
            sold = (
                rise.sold_to_peak_20_ml if rise is not None else self._sold_between(parse_ts(report.start_ts), end_ms)
            )
            body = DeliveryBody(
                tank=self.binding.tank,
                product=str(fuel.product),
                source="gauge",
                start=report.start_ts,
                end=report.end_ts,
                start_volume_ml=report.start_volume_ml,
                end_volume_ml=report.end_volume_ml,
                start_volume_20_ml=start_20,
                end_volume_20_ml=end_20,
                sold_during_20_ml=sold,
                delivered_20_ml=end_20 - start_20 + sold,
                start_temperature_cC=report.start_temperature_cC,
                end_temperature_cC=report.end_temperature_cC,
                start_height_um=report.start_height_um,
                end_height_um=report.end_height_um,
            )
            self._deliveries_seen_to_ms = end_ms
            self._book_delivery(body.delivered_20_ml, None if rise is not None else end_ms)
            if rise is not None:
                self._rest = self._last
            intents.append(body.intent(end_ms, Cursor(self.binding.cursor_key("gauge_deliveries_to_ms"), end_ms)))
        return intents

    def _sold_between(self, start_ms: int, end_ms: int) -> int:
        return sum(volume for ts, volume in self._recent_sales if start_ms < ts <= end_ms)

    # -- inventory ---------------------------------------------------------------------------------------------

    def _inventory(self, level: Level) -> list[RecordIntent]:
        last = self._reported
        rules = self._rules
        due = (
            last is None
            or level.ts_ms - last.ts_ms >= rules.inventory_interval_s * 1000
            or abs(level.volume_20_ml - last.volume_20_ml) >= rules.inventory_change_ml
            or abs(level.water_um - last.water_um) >= rules.inventory_water_change_um
            or abs(level.temperature_cC - last.temperature_cC) >= rules.inventory_temperature_change_cC
            or level.delivery_in_progress != last.delivery_in_progress
        )
        if not due:
            return []
        self._reported = level
        body = TankInventoryBody(
            tank=self.binding.tank,
            product=str(self.binding.fuel.product),
            volume_ml=level.volume_ml,
            volume_20_ml=level.volume_20_ml,
            ullage_ml=level.ullage_ml,
            height_um=level.height_um,
            water_um=level.water_um,
            temperature_cC=level.temperature_cC,
            delivery_in_progress=level.delivery_in_progress,
            vcf_band=self.binding.fuel.band.value,
            density_basis=self.binding.fuel.density_basis.value,
        )
        return [body.intent(level.ts_ms)]

    # -- deliveries the agent sees ------------------------------------------------------------------------------

    def _watch_rise(self, level: Level) -> list[RecordIntent]:
        """A rise beyond `delivery_min_ml` over the level at rest, net of sales, is a delivery; it has settled
        when the level has not risen for `delivery_settle_s`. The level at rest follows the tank down and
        forgets a small rise after `delivery_settle_s`, so gauge noise cannot add up to a delivery."""
        rules = self._rules
        rise = self._rise
        if rise is None:
            rest = self._rest
            if rest is None:
                self._rest = level
                return []
            sold = self._sold_between(rest.ts_ms, level.ts_ms)
            gain = level.volume_20_ml - rest.volume_20_ml + sold
            if gain >= rules.delivery_min_ml:
                self._rise = _Rise(rest, level, sold)
            elif gain <= 0 or level.ts_ms - rest.ts_ms >= rules.delivery_settle_s * 1000:
                self._rest = level
            return []
        if level.volume_20_ml > rise.peak.volume_20_ml + rules.delivery_min_ml // 50:
            rise.peak, rise.settled_ms, rise.sold_to_peak_20_ml = level, None, rise.sold_20_ml
            return []
        if level.ts_ms - rise.peak.ts_ms < rules.delivery_settle_s * 1000:
            return []
        if rise.settled_ms is None:
            rise.settled_ms = level.ts_ms
        if self.reports_deliveries and level.ts_ms - rise.settled_ms < rules.delivery_report_wait_s * 1000:
            return []  # the gauge will report it, with its own start and end
        self._rise, self._rest = None, level
        return [self._detected(rise, level)]

    def _detected(self, rise: _Rise, level: Level) -> RecordIntent:
        start = rise.start
        body = DeliveryBody(
            tank=self.binding.tank,
            product=str(self.binding.fuel.product),
            source="detected" if self.gauge_reports_deliveries else "detected_report_unavailable",
            start=format_ts(start.ts_ms),
            end=format_ts(rise.peak.ts_ms),
            start_volume_ml=start.volume_ml,
            end_volume_ml=level.volume_ml,
            start_volume_20_ml=start.volume_20_ml,
            end_volume_20_ml=level.volume_20_ml,
            sold_during_20_ml=rise.sold_20_ml,
            delivered_20_ml=level.volume_20_ml - start.volume_20_ml + rise.sold_20_ml,
            start_temperature_cC=start.temperature_cC,
            end_temperature_cC=level.temperature_cC,
            start_height_um=start.height_um,
            end_height_um=level.height_um,
        )
        self._book_delivery(body.delivered_20_ml, None)
        if not self.reports_deliveries:
            return body.intent(level.ts_ms)
        # A gauge report of this delivery arriving after all must not book it twice.
        self._deliveries_seen_to_ms = level.ts_ms
        return body.intent(level.ts_ms, Cursor(self.binding.cursor_key("gauge_deliveries_to_ms"), level.ts_ms))

    def _book_delivery(self, delivered_20_ml: int, end_ms: int | None) -> None:
        """Into every open book, or (a delivery the agent did not watch) those opened before it ended."""
        for books in self._books.values():
            if end_ms is None or books.opening.ts_ms < end_ms:
                books.delivered_20_ml += delivered_20_ml

    # -- the books ---------------------------------------------------------------------------------------------

    def _close_books(self, level: Level) -> list[RecordIntent]:
        intents: list[RecordIntent] = []
        seamless = self._last is not None and level.ts_ms - self._last.ts_ms <= _GAP_MS
        for period in ("hour", "day"):
            books = self._books.get(period)
            if books is None:
                self._books[period] = self._open(period, level, complete=False)
                continue
            books.temperature_sum_cC += level.temperature_cC
            books.readings += 1
            books.complete = books.complete and seamless
            if level.ts_ms < books.end_ms or self._delivery_pending(level, books):
                continue
            intents.append(self._closing(books, level))
            self._books[period] = self._open(period, level, complete=seamless)
        return intents

    def _delivery_pending(self, level: Level, books: _Books) -> bool:
        """A delivery under way, or settled but not yet reported, keeps the books open (up to a limit)."""
        under_way = self._rise is not None or level.delivery_in_progress
        return under_way and level.ts_ms - books.end_ms < self._rules.delivery_report_wait_s * 2000

    def _open(self, period: str, level: Level, *, complete: bool) -> _Books:
        start, end = self._bounds(period, level.ts_ms)
        return _Books(period, start, end, level, complete=complete)

    def _bounds(self, period: str, ts_ms: int) -> tuple[int, int]:
        if period == "hour":
            start = ts_ms - ts_ms % _HOUR_MS
            return start, start + _HOUR_MS
        return self._days.bounds(self._days.day_of(ts_ms))

    def _closing(self, books: _Books, level: Level) -> RecordIntent:
        variance = books.opening.volume_20_ml - level.volume_20_ml + books.delivered_20_ml - books.sold_20_ml
        cursors: tuple[Cursor, ...] = ()
        if books.period == "hour":
            self._cumulative_ml += variance
            cursors = (Cursor(self.binding.cursor_key("cumulative_variance_ml"), self._cumulative_ml),)
        body = ReconciliationBody(
            tank=self.binding.tank,
            product=str(self.binding.fuel.product),
            period="hour" if books.period == "hour" else "day",
            start=format_ts(books.start_ms),
            end=format_ts(books.end_ms),
            opening_ts=format_ts(books.opening.ts_ms),
            closing_ts=format_ts(level.ts_ms),
            opening_volume_20_ml=books.opening.volume_20_ml,
            closing_volume_20_ml=level.volume_20_ml,
            delivered_20_ml=books.delivered_20_ml,
            sold_20_ml=books.sold_20_ml,
            sales=books.sales,
            temperature_cC=books.temperature_sum_cC // max(1, books.readings),
            variance_ml=variance,
            cumulative_variance_ml=self._cumulative_ml,
            complete=books.complete,
        )
        return body.intent(level.ts_ms, *cursors)
