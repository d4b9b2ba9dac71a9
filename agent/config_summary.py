"""The one-screen picture of a station's config that `check-config`, `provision` and the web page's sheet show."""

from __future__ import annotations

from agent.config import LoadedConfig
from agent.station.settings import NozzleSection, TankSection
from agent.uplink.settings import TlsSection
from drivers.line_settings import DeviceSection, RtuLineSection, TankGaugeSection, TlsLineSection, TlsTcpLineSection


def _density(tank: TankSection) -> str:
    fuel = tank.fuel()
    given = (tank.density_20_kg_m3, "20") if tank.density_20_kg_m3 is not None else (fuel.density_15_kg_m3, "15")
    return f"{given[0]:g} kg/m3 at {given[1]} degC ({fuel.band.value} band of API 11.1)"


def _tls_mode(tls: TlsSection | None) -> str:
    if tls is None:
        return "off"
    return "mutual" if tls.cert_file is not None else "on"


def summary(loaded: LoadedConfig) -> str:
    """A one-screen picture of the station, for an installer checking a config before handing over."""
    config = loaded.config
    out = [
        f"station   {config.station.id}  {config.station.name}  ({config.station.timezone})",
        f"config    {loaded.source}  sha256 {loaded.sha256[:16]}",
        f"uplink    mqtt{' ' + config.uplink.protocol} {config.uplink.broker}  prefix {config.uplink.prefix}"
        f"  tls {_tls_mode(config.uplink.tls)}"
        f"  acks from the {config.uplink.ack_mode}",
        f"outbox    {config.outbox.path}  cap {config.outbox.max_bytes // 1024**2} MiB"
        f"  keeps acked records {config.outbox.retention_days:g} days / {config.outbox.retention_bytes // 1024**2} MiB",
        f"key       {config.keys.device_key}",
        f"heartbeat every {config.heartbeat.interval_s} s",
    ]
    for line in config.lines:
        where = (
            f"{line.port} {line.baudrate} {line.parity}{line.stopbits}"
            if isinstance(line, RtuLineSection | TlsLineSection)
            else f"tcp {line.host}:{line.port}"
        )
        protocol = "Veeder-Root TLS" if isinstance(line, TlsLineSection | TlsTcpLineSection) else "Modbus"
        out.append(f"line      {line.name}: {protocol} {where}")
        out.extend(f"  device  {_device_summary(device)}" for device in line.devices)
    for tank in config.tanks:
        measured = f"gauge {tank.gauge.device}#{tank.gauge.tank}" if tank.gauge else f"probe {tank.probe} with chart"
        out.append(f"tank      {tank.id}: {tank.product} at {_density(tank)}, {tank.capacity_l} L, {measured}")
    if config.tanks:
        leak = config.leak
        out.append(
            f"tank test a leak of {leak.target_leak_ml_per_h} mL/h and {leak.target_unrecorded_ppm / 10_000:g} % of "
            f"sales unrecorded, over {leak.window_h} h of hourly books"
        )
    for dispenser in config.dispensers:
        out.append(f"dispenser {dispenser.id}")
        out.extend(f"  nozzle  {_nozzle_summary(nozzle)}" for nozzle in dispenser.nozzles)
    metering = config.metering
    verified = ", ".join(f"{v.device} ({v.certificate})" for v in config.verifications) or "none"
    out.append(
        f"metering  MPE {metering.mpe_ppm / 10_000:g} %, judged from {metering.min_measured_ml / 1000:g} L;"
        f" verified calibrations: {verified}"
    )
    return "\n".join(out)


def _device_summary(device: DeviceSection | TankGaugeSection) -> str:
    if isinstance(device, TankGaugeSection):
        return f"{device.name}: tank gauge, every {device.poll_interval_ms} ms"
    return f"{device.name}: unit {device.unit}, profile {device.profile}, every {device.poll_interval_ms} ms"


def _nozzle_summary(nozzle: NozzleSection) -> str:
    text = f"{nozzle.id}: {nozzle.grade}, tank {nozzle.tank or '-'}"
    text += f", controller {nozzle.controller}#{nozzle.controller_nozzle}"
    if nozzle.pulse is not None:
        text += f", encoder {nozzle.pulse.device}#{nozzle.pulse.channel} ({nozzle.pulse.ml_per_pulse} mL/pulse)"
    if nozzle.vapour is not None:
        text += f", vapour {nozzle.vapour.device}#{nozzle.vapour.channel}"
    return text
