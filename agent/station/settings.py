"""The station's own sections: `[station]`, `[[dispensers]]` with their nozzles, `[metering]`,
`[[verifications]]`, `[[tanks]]` and `[tank_rules]`.

Beside the station code that reads them (nozzle, devices, tank, station), as `[leak]`, `[vapour]`,
`[pressure]` and `[daily]` are beside theirs; `agent.config` assembles them into the config.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.station.vcf import Fuel, Product
from drivers.schema import Ge, Gt, Le, Matches, MaxLen, MinLen, Name, Satisfies, doc, settings


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


STATION_ID = Matches("1-64 letters, digits, '_', '-', '.'", r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
StationId = Annotated[str, STATION_ID]
TimeZone = Annotated[str, Satisfies("an IANA time zone name such as 'Asia/Shanghai'", _known_zone)]


@settings
class StationSection:
    id: StationId = doc("the station id the platform registered")
    name: Annotated[str, MaxLen(200)] = doc("a human-readable station name", default="")
    timezone: TimeZone = doc("the station's local time zone", default="UTC")
    locale: Literal["zh_CN", "en"] | None = doc(
        "the language `station-agent status` speaks to staff: 'zh_CN' or 'en' (default: zh_CN for a station in "
        "China's time zones, en elsewhere)",
        default=None,
    )
    allow_empty: bool = doc(
        "run with no [[dispensers]] and no [[tanks]] (a box that only relays, or one still being set up); "
        "otherwise such a config is refused, since a station with nothing to watch records nothing",
        default=False,
    )


@settings
class PulseTap:
    """Where a nozzle's encoder pulses are counted, independently of its controller."""

    device: Name = doc("the name of the pulse-counter device")
    channel: Annotated[int, Ge(1), Le(64)] = doc("the counter channel, 1..64")
    ml_per_pulse: Annotated[Decimal, Gt(0), Le(1000)] = doc(
        "the pulse equivalent (脉冲当量) in mL per pulse, e.g. 10 for 100 pulses/L"
    )


@settings
class VapourTap:
    """Where a nozzle's vapour flow meter pulses are counted."""

    device: Name = doc("the name of the pulse-counter device")
    channel: Annotated[int, Ge(1), Le(64)] = doc("the counter channel, 1..64")
    ml_per_pulse: Annotated[Decimal, Gt(0), Le(1000)] = doc("vapour mL per pulse of the meter")
    meter_factor: Annotated[Decimal, Gt(0), Le(10)] = doc(
        "the vapour meter's calibration factor (1 = as counted)", default=Decimal(1)
    )


@settings
class NozzleSection:
    id: Name = doc("the nozzle's id, used in records")
    grade: Annotated[str, MinLen(1), MaxLen(32)] = doc("the fuel grade, e.g. '92', '95', '0#'")
    tank: Annotated[str, MaxLen(32)] = doc("the tank this nozzle draws from", default="")
    controller: Name = doc("the name of the pump-controller device that reports this nozzle")
    controller_nozzle: Annotated[int, Ge(1), Le(32)] = doc("the nozzle's number on its controller, 1..32")
    pulse: PulseTap | None = doc("the nozzle's encoder on a pulse counter", default=None)
    vapour: VapourTap | None = doc("the nozzle's vapour flow meter on a pulse counter", default=None)
    hj212_code: Annotated[str, Matches("1-32 characters without ; , = & or spaces", r"[^;,=&\s]{1,32}")] | None = doc(
        "the nozzle's code on the ecology platform (HJ 212 i41019), if not the city profile's format", default=None
    )


@settings
class DispenserSection:
    id: Name = doc("the dispenser's id")
    nozzles: Annotated[tuple[NozzleSection, ...], MinLen(1)] = doc("the dispenser's nozzles")


@settings
class MeteringSection:
    """Thresholds of the metering checks (JJG 443 defaults); every one is the installer's to set."""

    mpe_ppm: Annotated[int, Ge(100), Le(50_000)] = doc(
        "maximum permissible error in ppm of volume (3000 = 0.3 %)", default=3000
    )
    min_measured_ml: Annotated[int, Ge(0)] = doc(
        "fuellings below this volume (mL) are not judged for accuracy", default=2000
    )
    rest_pulse_tolerance: Annotated[int, Ge(0)] = doc(
        "encoder pulses at rest (nozzle hung up) ignored as noise", default=2
    )
    rest_clear_s: Annotated[float, Gt(0)] = doc(
        "pulses at rest must stay away this long before their alarm clears", default=60.0
    )
    silent_after_s: Annotated[float, Gt(0)] = doc(
        "a device offline this long raises a device_silent alarm", default=60.0
    )
    line_error_ratio: Annotated[float, Gt(0), Le(1)] = doc(
        "failed share of requests to answering devices that is a storm", default=0.2
    )
    line_error_window_s: Annotated[float, Ge(5)] = doc(
        "the window the failed share is taken over, in seconds", default=60.0
    )
    line_error_min_requests: Annotated[int, Ge(1)] = doc("fewer requests in a window prove nothing", default=20)
    pulse_wait_s: Annotated[float, Gt(0)] = doc(
        "how long a sale waits for a pulse count taken after it ended", default=5.0
    )
    bias_alarm_ppm: Annotated[int, Ge(100), Le(50_000)] = doc(
        "the metering bias the sequential test is built to find, ppm; between mpe_ppm and this it may wait",
        default=3600,
    )
    bias_error_rate: Annotated[float, Gt(0), Le(0.01)] = doc(
        "one sequential bias test's chance of a wrong verdict, either way (Wald's alpha = beta)", default=1e-6
    )

    def __post_init__(self) -> None:
        if self.bias_alarm_ppm <= self.mpe_ppm:
            raise ValueError(
                f"bias_alarm_ppm ({self.bias_alarm_ppm}) must be above mpe_ppm ({self.mpe_ppm}): the bias test tells "
                "a legal meter from one beyond the alarm level; set it a little above the MPE, e.g. mpe_ppm + 600"
            )


@settings
class GaugeTapSection:
    device: Name = doc("the name of the tank gauge")
    tank: Annotated[int, Ge(1), Le(99)] = doc("the tank's number on the gauge, 1..99")


@settings
class TankSection:
    """A tank: its product, its size, what measures it, and for a level probe the chart that turns heights
    into volumes (heights in mm, volumes in L, from the tank's calibration certificate)."""

    id: Name = doc("the tank's id, as the nozzles' `tank` names it")
    product: Literal["gasoline", "diesel"] = doc("the product family, as the records name it")
    density_20_kg_m3: Annotated[float, Ge(649), Le(1071)] | None = doc(
        "the product's standard density at 20 degC (标准密度 on the delivery note), kg/m3", default=None
    )
    density_15_kg_m3: Annotated[float, Ge(653), Le(1075)] | None = doc(
        "or: its density at 15 degC, kg/m3; the density picks the thermal expansion (API 11.1 Table 54B)",
        default=None,
    )
    capacity_l: Annotated[int, Ge(100), Le(1_000_000)] = doc("the tank's nominal capacity in litres")
    gauge: GaugeTapSection | None = doc("the tank gauge and the tank's number on it", default=None)
    probe: Name | None = doc("or: the name of the Modbus level probe in the tank", default=None)
    chart: tuple[tuple[float, float], ...] = doc("(height mm, volume L) rows, heights rising", default=())
    chart_file: Path | None = doc("or: a CSV file of height_mm,volume_l rows", default=None)

    def __post_init__(self) -> None:
        if (self.density_20_kg_m3 is None) == (self.density_15_kg_m3 is None):
            raise ValueError(
                f"tank {self.id}: give one density, density_20_kg_m3 (the standard density at 20 degC that the "
                "delivery note gives) or density_15_kg_m3, "
                + ("not both" if self.density_20_kg_m3 is not None else "not neither")
            )
        if (self.gauge is None) == (self.probe is None):
            raise ValueError(f"tank {self.id}: give either a gauge or a probe")
        if self.probe is not None and not self.chart and self.chart_file is None:
            raise ValueError(f"tank {self.id}: a level probe needs the tank's chart (chart or chart_file)")
        heights = [height for height, _ in self.chart]
        volumes = [volume for _, volume in self.chart]
        if any(b <= a for a, b in pairwise(heights)) or any(b < a for a, b in pairwise(volumes)):
            raise ValueError(f"tank {self.id}: chart heights must rise and volumes must not fall")

    def fuel(self) -> Fuel:
        """The product with the density the installer gave, which picks its band of thermal expansion."""
        product = Product(self.product)
        if self.density_20_kg_m3 is not None:
            return Fuel.from_density_20(product, self.density_20_kg_m3)
        assert self.density_15_kg_m3 is not None, "a tank has one density (checked above)"
        return Fuel(product, self.density_15_kg_m3)


@settings
class TankRulesSection:
    """When tank records are made (defaults suit a station that sells a few thousand litres a day)."""

    inventory_interval_s: Annotated[int, Ge(10), Le(86_400)] = doc(
        "a tank_inventory record at least this often", default=600
    )
    inventory_change_ml: Annotated[int, Ge(1000)] = doc(
        "... and whenever the volume at 20 degC moved this much", default=200_000
    )
    inventory_water_change_um: Annotated[int, Ge(100)] = doc("... or the water level this much", default=2000)
    inventory_temperature_change_cC: Annotated[int, Ge(10)] = doc("... or the temperature this much", default=100)
    delivery_min_ml: Annotated[int, Ge(10_000)] = doc(
        "a rise in the tank, net of sales, this large is a delivery", default=500_000
    )
    delivery_settle_s: Annotated[int, Ge(10)] = doc(
        "a delivery has ended when the level stopped rising this long", default=600
    )
    delivery_report_wait_s: Annotated[int, Ge(0), Le(86_400)] = doc(
        "how long to wait for a gauge's own report of a rise before recording it as detected", default=3600
    )


@settings
class VerificationSection:
    """A device's calibration as verified (强制检定): changes to other values raise an alarm."""

    device: Name = doc("the name of the verified device")
    k_factor: int | None = doc("the verified calibration parameter", default=None)
    firmware_id: int | None = doc("the verified firmware id", default=None)
    certificate: Annotated[str, MinLen(1)] = doc("the verification certificate's number")
