"""The JSON Schemas of platform contract v1, generated from the record bodies so they cannot drift from the code.

Theory of operation: each body dataclass in `agent.contract.records` is turned into a schema by pydantic, then made
into a wire schema: every field required (the agent always writes every field), integers bounded to the range
RFC 8785 can serialize exactly, time, hash and key-id fields given their patterns, and every field given a
description written for people outside the project (a body or field without one stops the generator, so new
fields cannot slip out undocumented). Extra body fields are allowed, but only as JSON without floats: that is
how a documented addition stays valid against an older schema. Each alarm kind has an evidence class in
`agent.contract.evidence` whose docstring says when it is raised and cleared and whose fields carry their
meaning (`Doc`); `ALARM_KINDS` is read from them, and each kind becomes an `if kind is ... then` branch: an
alarm of a kind not listed stays valid, as v1 allows new kinds.
The envelope, the records message, the ack and the status payload are written here by hand, from the contract.

    python -m station_lab.contract_docs            # write docs/contract/schemas/
    python -m station_lab.contract_docs --check    # exit 1, naming each file that is not what it would write
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import TypeAdapter

from agent.contract.evidence import EVIDENCE, AlarmEvidence, Evidence
from agent.contract.records import BODY_TYPES, CONTRACT_VERSION, Body, EventKind, RecordType
from agent.station.settings import STATION_ID

Schema = dict[str, Any]

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
BASE_ID: Final = "https://schemas.station-agent.example/contract/v1/"
DEFAULT_DIR: Final = Path("docs/contract/schemas")

TS_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"
HEX64_PATTERN: Final = "^[0-9a-f]{64}$"
KID_PATTERN: Final = "^(sm2-)?[0-9a-f]{16}$"
"""An Ed25519 key id (16 hex digits, v1.0) or, since v1.2, an SM2 one (`sm2-` and 16 hex digits)."""
SIG_PATTERN: Final = "^[A-Za-z0-9+/]{85}[AQgw]==$"
"""64 bytes in padded base64: the last character before the padding carries 2 bits and four zero bits."""
SAFE_INTEGER: Final = 2**53 - 1
"""The largest integer RFC 8785 writes exactly (it serializes numbers as IEEE 754 doubles)."""


_BODIES: Final[dict[str, str]] = {
    "heartbeat": "Proof that the agent ran: one every configured interval, whether the uplink is online or not.",
    "agent_start": "The agent started; the first record of every run.",
    "agent_stop": "The agent stopped cleanly; the last record of a run. A run that ends without one ended "
    "uncleanly, and the next run says so with an unclean_stop.",
    "unclean_stop": "Made at start when the previous run did not stop cleanly: it was killed, crashed or lost "
    "power. Records the previous run made but had not stored are lost, never sealed, so seq has no gap.",
    "clock_jump": "The agent's wall clock stepped by more than the configured threshold. The ts of records "
    "around it are to be read with care.",
    "config_change": "The station config differs from the one the previous run used.",
    "device_online": "A field device answers polls (again).",
    "device_offline": "A field device stopped answering polls.",
    "controller_baseline": "The first reading of a nozzle's pump controller: where its sale number and "
    "totalizers stand. The next transaction of that nozzle follows from here.",
    "device_identity": "What a pump controller reports of its calibration and firmware, recorded the first time the "
    "agent reads that controller (once per controller, not once per run). Later changes are calibration_change "
    "events.",
    "calibration_change": "A pump controller reports a calibration parameter (K-factor) or firmware id other than "
    "the one last recorded for it. Whether the controller as a whole is at trusted values is told by the "
    "calibration_unverified alarm.",
    "alarm": "A condition that needs attention. Raised once when it starts and cleared once when it ends, "
    "identified by kind and subject; evidence holds the numbers that prove it. The kinds documented in v1 are "
    "in $defs, each with its subject and evidence; an alarm of another kind is valid with any evidence of "
    "strings, integers, booleans and nulls.",
    "transaction": "One completed fuelling as the pump controller reported it, with the nozzle's independent "
    "measurements beside it: the volume by its encoder and the vapour recovered, each null when it could not "
    "be measured.",
    "tank_test": "A tank's leak and unrecorded-sales test as it stands at the close of a local day: the statistical "
    "test the agent runs every hour on the tank's hourly reconciliations of the last window_h hours (default 30 "
    "days). Made for every tank every day, pass and inconclusive included.",
    "command_accepted": "A command on the cmd topic passed every check (signed by the platform key provisioned "
    "on the box, for this station, within its validity, not seen before, known, with good arguments) and is being "
    "carried out. Made before the command acts, so a record the command makes (a key_rotation) comes after it.",
    "command_refused": "A message on the cmd topic was refused; its reply carried the same reason. Recorded at most "
    "commands.refusals_per_hour an hour (a burst of that many at once); refusals beyond that are counted, by "
    "reason, in the next command_refused.",
    "internal_error": "A loop of the agent (named in `loop`) met an error it did not expect while handling one "
    "item (a message, a reading, a frame), contained it and went on with the next. At most one record per loop per "
    "minute; `count` says how many errors it stands for. A loop that keeps failing pauses longer between tries "
    "and shows as failing in the status; the agent itself keeps running.",
    "gauge_report_unavailable": "A tank gauge refused one of its optional reports (`i202` deliveries, `i205` "
    "active alarms) with the protocol's error answer: the console has it switched off, or its firmware lacks it. "
    "The agent stops asking for it, asks again once a day, and goes on: the inventory (`i201`) keeps being "
    "recorded and, without `i202`, deliveries are inferred from the inventory's rise (source "
    "`detected_report_unavailable`). Made once per gauge and report when the refusal is first seen (not again "
    "after a restart), and once more, with `available` true, when the gauge answers the report again.",
    "ack_refused": "Messages on the ack topic were refused unread or unused: too large (uplink.max_ack_bytes), "
    'nested too deep, holding a number too long, not JSON, or not `{"upto": N}`. Anyone who may publish there '
    "can send anything, and a retained message comes again at every connect; the agent drops it and goes on. "
    "At most one record a minute; `count` says how many refusals it stands for, the rest of the body describes "
    "the last one.",
    "uplink_unstable": "Something keeps the uplink from steady delivery: the broker ends every session within "
    "seconds (`sessions_short`: another box with the same client id, an ACL that refuses the client, a failing "
    "broker), another client took the client id over (`taken_over`, MQTT 5 reason 142), or the platform acked "
    "less than it had (`platform_acked_less`: restored from a backup; the agent sends again from its `upto`). At "
    "most one record a minute per reason; `count` says how many occurrences it stands for. A record made while "
    "the link is down is delivered once it is steady again.",
    "key_rotation": "The device key changed. This record is signed by the old key and carries the new public key; "
    "every record after it is signed by the new key. A receiver trusts the new key because the old one "
    "announced it.",
    "tank_inventory": "What a tank holds now, as its gauge or level probe measures it, with the volume at 20 degC "
    "(GB/T 1885). Made every configured interval and whenever the volume, water, temperature or delivery state "
    "changes by the configured amount.",
    "delivery": "Fuel delivered into a tank, once per delivery: as the tank gauge reported it (source `gauge`), "
    "or as the agent saw the tank rise by more than sales explain (source `detected`, for a level probe, or a "
    "gauge that did not report the rise; `detected_report_unavailable` for a gauge that refuses its delivery "
    "report).",
    "reconciliation": "A tank's books for an hour or a local day, at 20 degC: opening and closing volume, what was "
    "delivered and sold, and the variance no sale or delivery explains. The books close at the first reading "
    "past the period's end, later while a delivery is under way, so consecutive periods add up exactly.",
    "daily_summary": "The station's books of one local day, made once per day some minutes after the day ends "
    "(close_after_s, default 900 s), and once only, also across restarts; after the agent was off, every day "
    "missed is summed up when it starts again. Sales per nozzle and per grade from the day's transactions, with "
    "the nozzles' totalizers against them; each tank's own day books; and when the agent, the uplink or a field "
    "device was down.",
    "vapour": "A nozzle's vapour recovery over one local day: the fuellings counted for the vapour-to-liquid "
    "ratio (A/L), their mean and spread, and the verdict of the configured rule set (GB 20952 pass share with "
    "warning days, or CARB's daily and weekly means). Made for every nozzle seen, every day, at the day's close; "
    "it also carries what the next day's judgement starts from, so a restarted agent resumes from its records.",
    "chain_reset": "Contract v1.1. The agent lost its store of records (deleted, rolled back to an older copy, "
    "corrupt, or refused and set aside by `station-agent recover`) while its key survived, and starts it again "
    "above every seq it may have used before. Its seq is one above lost_last; its prev is not the SHA-256 of "
    "record seq - 1 but of record known_seq (64 zeros if known_seq is 0). Records lost_first..lost_last may "
    "have been made: those the platform holds are genuine, those it lacks are lost for good and are not a gap.",
    "tank_pressure": "A tank vapour-space pressure sensor summed up over an interval (every record_interval_s, "
    "default 300 s, aligned to the clock) or over a local day. A day's record also holds the consecutive warning "
    "days of the daily rules.",
}

_FIELDS: Final[dict[str, str]] = {
    "interval_s": "Seconds between heartbeats, as configured.",
    "uptime_s": "Whole seconds since this run of the agent started, by the monotonic clock.",
    "uplink": "Whether the agent had a session with the broker when it made this heartbeat.",
    "unacked": "Records made but not yet acknowledged when this heartbeat was made.",
    "devices_online": "Field devices answering polls.",
    "devices_total": "Field devices in the config.",
    "version": "The agent's software version.",
    "config_sha256": "SHA-256, lowercase hex, of the station config file's bytes.",
    "kid": "The key id of the key that signs this run's records.",
    "kind": "The event kind; it selects the rest of the body.",
    "agent_stop.reason": "Why the agent stopped: `stopped` for a service stop.",
    "last_record_seq": "seq of the last record the previous run stored (0 if it stored none).",
    "last_record_ts": "ts of that record, or null if there was none.",
    "from_ts": "Where the wall clock should have been: by the monotonic clock during a run, or the ts of the "
    "last stored record when found at start.",
    "to_ts": "Where the wall clock was.",
    "jump_ms": "to_ts minus from_ts in milliseconds; negative when the clock stepped back.",
    "across_restart": "true if found at start against the last stored record (only a backward step is "
    "detectable then), false if found during a run.",
    "old_sha256": "SHA-256, lowercase hex, of the config the previous run used.",
    "new_sha256": "SHA-256, lowercase hex, of the config this run uses.",
    "device": "The field device's name in the config.",
    "line": "The name of the bus line (an RS-485 port or a Modbus TCP endpoint) the device is on.",
    "device_offline.reason": "The error that ended polling, as text.",
    "report": "The gauge's report: `i202` (deliveries) or `i205` (active alarms).",
    "available": "False when the gauge refuses the report; true when it answers it again.",
    "gauge_report_unavailable.reason": "What it means, in words: what the agent does without the report.",
    "nozzle": "The nozzle id in the config.",
    "controller": "The name of the pump controller device that reports the nozzle.",
    "txn_no": "The controller's sale number.",
    "totalizer_volume_ml": "The nozzle's volume totalizer, mL.",
    "totalizer_amount_fen": "The nozzle's money totalizer, fen; null if the controller has none.",
    "k_factor": "The controller's calibration parameter (K-factor) as it reports it, in its model's unit (e.g. "
    "encoder pulses per 100 L); null if the controller does not report one.",
    "firmware_id": "The controller's firmware id, the integer it reports; null if it does not report one.",
    "parameter": "Which value changed: `k_factor` or `firmware_id`.",
    "old": "The value last recorded for the controller; null if the agent had seen none.",
    "new": "The value the controller reports now. Not null as the agent makes it: a value that stops being "
    "reported does not make this event.",
    "verified": "true if the new value is trusted: the one the verification of this controller in the station "
    "config names or, where that names none for this parameter, the value first seen (device_identity).",
    "certificate": "The certificate number of this controller's verification in the station config when "
    "verified is true and there is one; otherwise null.",
    "alarm.kind": "What is wrong, e.g. `metering_deviation`. The kinds of v1 are in $defs; receivers keep alarms "
    "of kinds they do not know.",
    "state": "`raised` when the condition starts, `cleared` when it ends.",
    "subject": "What the alarm is about: a nozzle id, a device name, a bus line name, a tank id or `outbox`, per kind.",
    "evidence": "The numbers that prove the alarm, keyed per kind: strings, integers, booleans or null. Keys a "
    "receiver does not know are to be ignored.",
    "dispenser": "The dispenser id in the config.",
    "grade": "The fuel grade of the nozzle, as in the config, e.g. `92`, `95`, `0#`.",
    "tank": "The id of the tank the nozzle draws from.",
    "start": "When the agent saw the nozzle leave rest; the record's ts if it did not see it.",
    "end": "When the agent saw the nozzle return to rest; the record's ts if it did not see it.",
    "volume_ml": "Volume dispensed, mL.",
    "amount_fen": "Amount charged, fen.",
    "price_fen_per_l": "Unit price, fen per litre.",
    "totalizer_volume_ml_before": "The volume totalizer, mL, after the nozzle's previous record; null if unknown.",
    "totalizer_volume_ml_after": "The volume totalizer, mL, after this sale.",
    "totalizer_amount_fen_before": "The money totalizer, fen, after the nozzle's previous record; null if unknown "
    "or if the controller has none.",
    "totalizer_amount_fen_after": "The money totalizer, fen, after this sale; null if the controller has none.",
    "pulse_volume_ml": "The volume by the nozzle's encoder, mL: the encoder's pulses, counted by an independent "
    "pulse counter between two points where no fuel flowed (the nozzle's previous sale or a confirmed rest), "
    "times the configured mL per pulse, rounded (halves to even). Null if the nozzle has no encoder on a "
    "counter, the sale number skipped (the pulses would include unseen sales), no count was taken within "
    "pulse_wait_s after the sale was seen, another sale came first, or no earlier point without flow is known.",
    "deviation_ppm": "How far volume_ml is from pulse_volume_ml, in parts per million of pulse_volume_ml: "
    "(volume_ml - pulse_volume_ml) * 1000000 / pulse_volume_ml, rounded to the nearest integer (halves to "
    "even). Null if pulse_volume_ml is null or not positive.",
    "vapour_ml": "The vapour recovered during the sale, mL: the nozzle's vapour meter pulses, counted the same "
    "way as the encoder's, times the configured mL per pulse and the meter's calibration factor, rounded "
    "(halves to even). Null for the same reasons as pulse_volume_ml, for the vapour meter.",
    "tank_test.tank": "The tank id in the config.",
    "tank_test.status": "`pass`: the data would have shown a leak of the target rate and unrecorded sales of the "
    "target share, and showed neither; `fail`: a loss beyond its threshold (see cause); `inconclusive`: too "
    "little or too noisy data to promise either.",
    "tank_test.cause": "For `fail`: `leak` (a loss per hour, sold or not) or `unrecorded_sales` (a loss that "
    "grows with what is sold: sales off the books, or meters that give more than they count); otherwise null.",
    "span_h": "The hours back from now that the figures describe: for `fail`, the span judged (from the most "
    "likely onset of the loss); otherwise the whole window.",
    "hours": "Hours of data used in that span (deliveries, the hours after them and incomplete hours left out).",
    "quiet_hours": "Of those, hours without a sale: the strongest evidence for or against a leak.",
    "tank_test.sold_20_ml": "Metered sales from the tank over those hours, at 20 degC, mL.",
    "leak_ml_per_h": "The estimated loss per hour independent of sales, mL/h (negative: a gain).",
    "leak_threshold_ml_per_h": "The estimate must exceed this to fail: the larger of the configured "
    "leak_threshold_ml_per_h and the estimate's noise times the z of false_alarm_probability.",
    "min_detectable_leak_ml_per_h": "The smallest leak these data would have shown with detection_probability: a "
    "pass needs it at or below target_leak_ml_per_h. Null when the data cannot tell.",
    "unrecorded_ppm": "The estimated share of the metered sales that left the tank a second time, unrecorded, in "
    "parts per million (negative: meters that give less than they count).",
    "unrecorded_threshold_ppm": "The share must exceed this to fail: the meters' tolerance (meter_tolerance_ppm) "
    "plus the estimate's noise times the z of false_alarm_probability.",
    "min_detectable_unrecorded_ppm": "The smallest unrecorded share these data would have shown with "
    "detection_probability: a pass needs it at or below target_unrecorded_ppm. Null when there were no sales.",
    "product": "The tank's product family, `gasoline` or `diesel`, as the station config names it.",
    "tank_inventory.tank": "The tank id in the config.",
    "tank_inventory.volume_ml": "The volume of product at its temperature, mL (the gauge's figure, or the tank "
    "chart's volume at the probe's height less the water).",
    "volume_20_ml": "The same volume at 20 degC, mL, by the VCF of GB/T 1885 (API MPMS 11.1 Tables 54B/60B) from "
    "the product's density and the measured temperature.",
    "vcf_band": "The density band of API MPMS 11.1 Table 54B whose expansion constants gave volume_20_ml, chosen by "
    "the density at 15 degC: `gasoline` (< 770.5 kg/m3), `transition` (< 787.5), `jet` (< 839), `fuel_oil`.",
    "density_basis": "The density the station config gives: `20C`, the standard density at 20 degC of the delivery "
    "note (converted to 15 degC as Table 60B does), or `15C`.",
    "ullage_ml": "Room left in the tank, mL.",
    "height_um": "The product level, micrometres.",
    "water_um": "The water level at the bottom of the tank, micrometres.",
    "temperature_cC": "The product temperature, hundredths of a degree Celsius.",
    "delivery_in_progress": "true while the gauge (or the agent, for a level probe) sees a delivery under way.",
    "delivery.tank": "The tank id in the config.",
    "source": "`gauge` if the tank gauge reported the delivery; `detected` if the agent saw the rise itself; "
    "`detected_report_unavailable` if the agent saw the rise itself because the gauge does not report deliveries "
    "(it refuses `i202`, see gauge_report_unavailable).",
    "delivery.start": "When the delivery started: the gauge's time, or the last reading before the rise.",
    "delivery.end": "When the delivery ended: the gauge's time, or the reading at which the level stopped rising.",
    "start_volume_ml": "The tank's volume at its temperature when the delivery started, mL.",
    "end_volume_ml": "The tank's volume at its temperature when the delivery ended, mL.",
    "start_volume_20_ml": "start_volume_ml at 20 degC, mL.",
    "end_volume_20_ml": "end_volume_ml at 20 degC, mL.",
    "sold_during_20_ml": "Sales from the tank between start and end, at 20 degC, mL.",
    "delivered_20_ml": "What arrived, at 20 degC, mL: end_volume_20_ml - start_volume_20_ml + sold_during_20_ml.",
    "start_temperature_cC": "The product temperature at the start, hundredths of a degree Celsius.",
    "end_temperature_cC": "The product temperature at the end, hundredths of a degree Celsius.",
    "start_height_um": "The product level at the start, micrometres.",
    "end_height_um": "The product level at the end, micrometres.",
    "reconciliation.tank": "The tank id in the config.",
    "period": "`hour` for a clock hour, `day` for a local day in the station's time zone.",
    "reconciliation.start": "The start of the period.",
    "reconciliation.end": "The end of the period.",
    "opening_ts": "When the opening level was read: the first reading at or past start (later if a delivery was "
    "under way), the closing level of the previous period.",
    "closing_ts": "When the closing level was read: the first reading at or past end, later if a delivery was "
    "under way.",
    "opening_volume_20_ml": "The tank's volume at 20 degC at opening_ts, mL.",
    "closing_volume_20_ml": "The tank's volume at 20 degC at closing_ts, mL.",
    "reconciliation.delivered_20_ml": "Deliveries booked in the period, at 20 degC, mL.",
    "sold_20_ml": "Metered sales from the nozzles that draw on the tank in the period, converted to 20 degC at "
    "the tank's temperature, mL.",
    "sales": "The number of those sales.",
    "reconciliation.temperature_cC": "The mean product temperature over the period's readings, hundredths of a "
    "degree Celsius.",
    "variance_ml": "opening_volume_20_ml - closing_volume_20_ml + delivered_20_ml - sold_20_ml: fuel that left the "
    "tank with no sale to account for it (positive) or sales the tank did not lose (negative).",
    "cumulative_variance_ml": "The running total of the hourly variances since the tank was first configured.",
    "complete": "false if the agent did not see the whole period: it started within it, or no reading came for "
    "more than ten minutes.",
    "al_permille": "The vapour-to-liquid ratio (A/L) in per-mille: vapour_ml * 1000 / volume_ml, rounded to the "
    "nearest integer (halves to even); 1000 is an A/L of 1.0. Null if vapour_ml is null or volume_ml is 0.",
    "daily_summary.day": "The local date of the day, YYYY-MM-DD: the day begins at the configured boundary "
    "(default 00:00) on this date.",
    "daily_summary.zone": "The IANA time zone of the station's local time, e.g. `Asia/Shanghai`.",
    "daily_summary.start": "When the day began: the boundary on that date in that zone; after the zone or the "
    "boundary was changed, the end of the previous summary's day, so that days never overlap or leave a gap.",
    "daily_summary.end": "When the day ended: the boundary on the next date. A day is 23 or 25 hours long across a "
    "daylight saving change.",
    "daily_summary.complete": "true if the agent ran through the whole day (agent_down.seconds is 0).",
    "daily_summary.nozzles": "Each nozzle with at least one transaction in the day (by the transaction's ts), by id.",
    "daily_summary.grades": "Each fuel grade with at least one transaction in the day, by grade.",
    "daily_summary.tanks": "Each tank's reconciliation of period `day` whose period lies mostly within this day, "
    "by tank id; a tank whose day books had not closed by the time of this summary is left out.",
    "daily_summary.agent_down": "When the agent was not running: from its agent_stop event, or from the last "
    "record before an unclean_stop, to its next agent_start.",
    "daily_summary.uplink_down": "When the agent had no session with the broker, by its heartbeats: from the "
    "first heartbeat with uplink `offline` to the next with `online`, so each end is late by up to one "
    "heartbeat interval and an outage shorter than one may not show. Time the agent was down is not counted.",
    "daily_summary.devices_down": "Each field device that was offline in the day, by name: from its device_offline "
    "event to its device_online event, or to the end of the agent's run. Time the agent was down is not counted.",
    "daily_summary.alarms_raised": "How many alarms of each kind were raised in the day, by kind; kinds none "
    "was raised of are left out.",
    "daily_summary.nozzle": "The nozzle id in the config.",
    "daily_summary.grade": "The fuel grade, as in the transactions.",
    "daily_summary.sales": "The number of transactions.",
    "daily_summary.volume_ml": "The sum of their volume_ml, mL.",
    "daily_summary.amount_fen": "The sum of their amount_fen, fen.",
    "daily_summary.totalizer_volume_ml_opening": "The totalizer_volume_ml_before of the nozzle's first transaction "
    "of the day, mL; null if that is null.",
    "daily_summary.totalizer_volume_ml_closing": "The totalizer_volume_ml_after of its last transaction of the "
    "day, mL.",
    "daily_summary.totalizer_volume_ml_difference": "closing - opening - volume_ml, mL: metered volume that no "
    "transaction accounts for (skipped sales, a totalizer that moved at rest); 0 when every sale is on record. "
    "Null if the opening is null. A totalizer that wrapped or was reset in the day shows here too.",
    "daily_summary.totalizer_amount_fen_opening": "The totalizer_amount_fen_before of the first transaction of "
    "the day, fen; null if that is null.",
    "daily_summary.totalizer_amount_fen_closing": "The totalizer_amount_fen_after of the last transaction of the "
    "day, fen; null if that is null.",
    "daily_summary.totalizer_amount_fen_difference": "closing - opening - amount_fen, fen; null if either is null.",
    "daily_summary.tanks.tank": "The tank id in the config.",
    "daily_summary.tanks.product": "The tank's product family, `gasoline` or `diesel`.",
    "daily_summary.tanks.start": "The start of the tank's day books: the local midnight that began them.",
    "daily_summary.tanks.end": "The end of the tank's day books.",
    "daily_summary.tanks.opening_volume_20_ml": "The reconciliation's opening_volume_20_ml, mL.",
    "daily_summary.tanks.closing_volume_20_ml": "The reconciliation's closing_volume_20_ml, mL.",
    "daily_summary.tanks.delivered_20_ml": "The reconciliation's delivered_20_ml, mL.",
    "daily_summary.tanks.sold_20_ml": "The reconciliation's sold_20_ml, mL.",
    "daily_summary.tanks.sales": "The reconciliation's sales: the number of sales from the tank.",
    "daily_summary.tanks.variance_ml": "The reconciliation's variance_ml, mL.",
    "daily_summary.tanks.cumulative_variance_ml": "The reconciliation's cumulative_variance_ml, mL.",
    "daily_summary.tanks.complete": "The reconciliation's complete: false if the agent did not see the tank's "
    "whole day.",
    "daily_summary.subject": "`agent`, `uplink`, or the device's name in the config.",
    "daily_summary.seconds": "Whole seconds down within the day, all periods together (rounded down).",
    "daily_summary.periods": "The longest periods down within the day, at most max_periods (default 24), in time "
    "order; each is clipped to the day.",
    "daily_summary.periods_left_out": "How many shorter periods are not listed (their time is in seconds).",
    "daily_summary.down_at_end": "true if it was still down when the day ended.",
    "daily_summary.periods.start": "When the period began, or the day's start.",
    "daily_summary.periods.end": "When it ended, or the day's end.",
    "daily_summary.periods.seconds": "Its length in whole seconds (rounded down).",
    "vapour.day": "The local date judged, YYYY-MM-DD.",
    "vapour.rule_set": "The rule set that gave the verdict: `gb20952` (GB 20952-2020 Annex E: the day's pass share, "
    "warning days) or `carb` (CARB EVR in-station diagnostics: daily and weekly mean A/L).",
    "vapour.fuellings": "The nozzle's transactions in the day, whether they count or not.",
    "vapour.counted": "Of those, the ones that count: at least min_volume_ml (default 15000 mL) with the vapour "
    "measured whole (vapour_ml and al_permille not null).",
    "vapour.passed": "Of the counted, those with al_permille within al_low_permille..al_high_permille (default "
    "1000..1200).",
    "vapour.slow": "Of the counted out of the band, those whose liquid flow (volume_ml over the time from start to "
    "end) was below slow_flow_ml_per_min (default 10000 mL/min).",
    "vapour.pump_fault": "Of the counted, those whose vapour flow (vapour_ml over the time from start to end) was "
    "below pump_fault_vapour_ml_per_min (default 1000 mL/min).",
    "vapour.pump_fault_run": "How many counted fuellings in a row, up to the day's end, had too little vapour flow "
    "(the vapour_pump_fault alarm's count, carried into the next day).",
    "vapour.al_sum_permille": "The sum of al_permille over the counted fuellings: with counted, what weekly means "
    "are made of.",
    "vapour.al_mean_permille": "The mean al_permille of the counted fuellings, rounded (halves to even); null if none.",
    "vapour.al_stdev_permille": "Their sample standard deviation, rounded to the nearest per mille; null if fewer "
    "than two.",
    "vapour.carried_fuellings": "Counted fuellings of earlier days that were too few to judge and rolled into this "
    "day's judgement (gb20952); 0 under carb.",
    "vapour.carried_passed": "Of those, the ones that passed.",
    "vapour.carried_slow": "Of those, the slow ones out of the band.",
    "vapour.carried_days": "How many days old the oldest carried fuelling is (days before the pool's first "
    "counted fuelling do not count); 0 when nothing is carried.",
    "vapour.judged_fuellings": "The counted fuellings the verdict rests on: carried_fuellings + counted.",
    "vapour.judged_passed": "Of those, the ones that passed: carried_passed + passed.",
    "vapour.judged_slow": "Of those, the slow ones out of the band: carried_slow + slow.",
    "vapour.pass_share_permille": "judged_passed * 1000 / judged_fuellings, rounded (halves to even), under gb20952 "
    "when the day is judged (judged_fuellings at least min_fuellings_per_day, default 5); otherwise null.",
    "vapour.week_counted": "Counted fuellings of the last carb_week_days days (default 7), this day included.",
    "vapour.week_al_mean_permille": "Their mean al_permille, rounded (halves to even); null if none.",
    "vapour.verdict": "`pass`, `warning` (gb20952: the pass share below warning_pass_share_permille, default 750; "
    "carb: the daily or weekly mean out of its band), `alarm` (gb20952: alarm_warning_days warning days in a row, "
    "default 5; carb: the daily test failing carb_daily_failure_days assessments in a row, default 2, or the "
    "weekly test carb_weekly_failure_days, default 8) or `inconclusive` (too few fuellings to judge; under carb "
    "neither test ran). Under carb a day with one test passed and the other not run is a pass.",
    "vapour.warning_days": "Warning days in a row up to this one (gb20952): a pass day resets it, an inconclusive "
    "day leaves it (unless thin_day_breaks_run); 0 under carb.",
    "vapour.daily_fail_days": "Failing daily-mean assessments in a row up to this day (carb): a passing one "
    "resets it, a day without one leaves it (unless thin_day_breaks_run); 0 under gb20952.",
    "vapour.weekly_fail_days": "Failing weekly-mean assessments in a row up to this day (carb), likewise; 0 under "
    "gb20952.",
    "vapour.rolled_over": "true if this day was too thin to judge and its counts roll into the next day's "
    "judgement; false once judged, and when the pool would span more than max_carry_days (default 100) and is "
    "dropped.",
    "tank_pressure.device": "The pressure sensor's device name in the config.",
    "tank_pressure.period": "`interval` for an interval of record_interval_s, `day` for a local day.",
    "tank_pressure.day": "For a day record the local date, YYYY-MM-DD; null for an interval.",
    "tank_pressure.start": "The start of the interval; for a day, the start of its first interval with readings "
    "(the day's end if there was none).",
    "tank_pressure.end": "The end of the interval; for a day, when the day was closed (its boundary).",
    "tank_pressure.readings": "The sensor's readings in the period.",
    "tank_pressure.mean_pa": "Their mean, Pa: for an interval rounded (halves to even); for a day, the mean of its "
    "intervals' mean_pa weighted by their readings, rounded. Null without readings.",
    "tank_pressure.min_pa": "The lowest reading, Pa; null without readings.",
    "tank_pressure.max_pa": "The highest reading, Pa; null without readings.",
    "tank_pressure.outside_band": "Readings outside band_low_pa..band_high_pa (default -1000..600 Pa).",
    "tank_pressure.over_pressure": "Readings above the P/V valve's opening pressure plus over_margin_pa.",
    "tank_pressure.zero_run_s": "The longest an unbroken run of readings within +-zero_band_pa (default 50 Pa) had "
    "lasted, in whole seconds, at any reading in the period, counted from the run's first reading even if that "
    "was earlier; a gap of more than max_gap_s (default 60 s) without readings breaks a run.",
    "tank_pressure.outside_band_permille": "For a day with readings, outside_band * 1000 / readings, rounded (halves "
    "to even); otherwise null.",
    "tank_pressure.zero_warning_days": "For a day, zero days in a row up to this one (days whose zero_run_s exceeded "
    "zero_run_s, default 12 h); a day without readings leaves it. Null for an interval.",
    "command_accepted.command_id": "The command's id, as the platform gave it.",
    "cmd": "The command: `ping`, `status`, `resend` or `rotate-key`.",
    "args": "The command's arguments as the platform sent them (strings, integers, booleans or null).",
    "issued": "When the platform issued the command, by its clock.",
    "expires": "When the command stops being valid; the agent refuses it from then on.",
    "platform_kid": "The key id of the platform key that signed the command.",
    "command_refused.command_id": "The message's id if it had the form of one (1-128 letters, digits, '_', '.', "
    "':', '-', starting with a letter or digit), else null. Unsigned messages are refused too: the id is not "
    "proof that the platform sent them.",
    "command_refused.cmd": "The message's cmd if it had the form of a command name, else null.",
    "command_refused.reason": "Why: `malformed`, `unsigned`, `unknown_kid`, `bad_signature`, `wrong_station`, "
    "`expired`, `issued_in_future`, `lifetime_too_long`, `replayed`, `unknown_command` or `bad_args`.",
    "command_refused.detail": "The refusal in words, ASCII, with any value quoted from the message shortened.",
    "suppressed": "Refusals not recorded since the previous command_refused, because of the rate limit.",
    "suppressed_by_reason": "Those refusals counted by reason.",
    "old_kid": "The key id of the key that signed this record and the records before it since the last rotation.",
    "new_kid": "The key id of the new key, which signs every record after this one.",
    "new_public_key": "The new public key in standard base64 with padding: an Ed25519 key's 32 raw bytes, or (v1.2, "
    "new_kid starting sm2-) an SM2 key's 65-byte uncompressed point 04 || x || y. Its key id is new_kid, whose form "
    "names the new key's suite, which may differ from the old key's.",
    "loop": "The agent's loop that contained the error: `recorder`, `station`, `uplink`, `uplink-hj212`, "
    "`commands` or `poller-<line>`.",
    "item": "What the loop was handling, in a few words (e.g. `ack message`, `poll D01`).",
    "error": "The class of the exception, e.g. `ValueError`.",
    "internal_error.detail": "The exception as one ASCII line of at most 200 characters.",
    "count": "How many errors of this loop this record stands for: this one and those not recorded since the "
    "loop's previous internal_error because of the rate limit.",
    "ack_refused.reason": "Why the last one was refused: `too_large` (more than uplink.max_ack_bytes), `too_deep` "
    "(nested deeper than an ack may be), `bad_number` (a number too long, or NaN/Infinity), `not_json` (not strict "
    'UTF-8 JSON) or `not_an_ack` (JSON, but not `{"upto": N}` with N a non-negative integer, or a retained '
    "message: the platform's acks never are).",
    "ack_refused.detail": "The last refusal in words, one ASCII line of at most 200 characters; never the payload "
    "beyond its first bytes.",
    "ack_refused.count": "How many ack messages this record stands for: the last one and those refused since the "
    "previous ack_refused.",
    "payload_bytes": "The size in bytes of the last refused message.",
    "uplink_unstable.reason": "`sessions_short` (a run of sessions that ended within seconds of starting), "
    "`taken_over` (the broker ended the session because another client connected with its client id) or "
    "`platform_acked_less` (an ack with an upto below what the platform had acked before).",
    "uplink_unstable.count": "How many occurrences this record stands for: the last one and those since the "
    "previous uplink_unstable of the same reason (for sessions_short, short sessions beyond the first few).",
    "believed_upto": "For platform_acked_less, the upto the agent believed the platform held; null otherwise.",
    "uplink_unstable.upto": "For platform_acked_less, the upto the platform acked, from where the agent sends "
    "again; null otherwise.",
    "key_rotation.command_id": "The id of the rotate-key command that asked for the rotation, or null.",
    "chain_reset.reason": "Why: `outbox_missing` (no store, or an empty one, where the anchor says records were "
    "made), `outbox_rolled_back` (the store ends before the anchor's record, or holds another record there), "
    "`outbox_corrupt` (its newest record fails its own signature) or `outbox_refused` (the agent refused to open "
    "it and `station-agent recover` set it aside).",
    "chain_reset.detail": "What the agent found, in words.",
    "lost_first": "The first seq the station may have made and can no longer send: one above the highest seq it "
    "knew to be acknowledged.",
    "lost_last": "The last seq that may have been made before the reset: this record's seq - 1.",
    "known_seq": "The last record the agent knows it made (from its anchor beside the key), 0 if none.",
    "known_digest": "The hash (SHA-256, or SM3 for an SM2 key, v1.2) of that record's canonical bytes, and so this "
    "record's prev; 64 zeros if known_seq is 0.",
    "known_ts": "ts of that record, or null if unknown.",
    "set_aside": "The file name the old store was moved to on the box, for an investigator, or null.",
    "tank_pressure.band_warning_days": "For a day, band warning days in a row up to this one (days with more than "
    "band_share_permille, default 250, of readings out of the band); a day without readings leaves it. Null for an "
    "interval.",
}

_PATTERNS: Final[dict[str, str]] = {
    "start": TS_PATTERN,
    "end": TS_PATTERN,
    "from_ts": TS_PATTERN,
    "to_ts": TS_PATTERN,
    "last_record_ts": TS_PATTERN,
    "config_sha256": HEX64_PATTERN,
    "old_sha256": HEX64_PATTERN,
    "new_sha256": HEX64_PATTERN,
    "kid": KID_PATTERN,
    "old_kid": KID_PATTERN,
    "new_kid": KID_PATTERN,
    "known_digest": HEX64_PATTERN,
    "known_ts": TS_PATTERN,
    "platform_kid": KID_PATTERN,
    "issued": TS_PATTERN,
    "expires": TS_PATTERN,
}


def _key(json_type: str, description: str, minimum: int = -SAFE_INTEGER, one_of: Sequence[str] = ()) -> Schema:
    """One evidence key: `json_type` is `integer`, `string` or `boolean`, with `|null` if it may be null;
    `one_of` lists the only strings it can be."""
    types = json_type.split("|")
    schema: Schema = {"type": types[0] if len(types) == 1 else types, "description": description}
    if "integer" in types:
        schema.update(minimum=minimum, maximum=SAFE_INTEGER)
    if one_of:
        schema["enum"] = list(one_of)
    return schema


@dataclasses.dataclass(frozen=True, slots=True)
class AlarmDoc:
    """An alarm kind as the contract documents it: its subject, when it is raised and cleared, its evidence.

    `evidence` is what a raised alarm carries, and a cleared one too unless `cleared_evidence` says otherwise;
    `cleared_patterns` are evidence keys of a cleared alarm named by a pattern (present only when they apply).
    """

    subject: str
    raised: str
    cleared: str
    evidence: dict[str, Schema]
    cleared_evidence: dict[str, Schema] | None = None
    cleared_patterns: dict[str, Schema] = dataclasses.field(default_factory=dict)
    raised_only: bool = False
    """No record clears it (it is over at the next agent_start)."""


def _evidence_keys(cls: type[Evidence]) -> dict[str, Schema]:
    """The documented keys of an evidence class, in field order, from its fields' types and `Doc`s; a field
    without a `Doc` is carried by pattern keys (`Evidence.patterns`), which are documented apart."""
    hints = get_type_hints(cls, include_extras=True)
    keys: dict[str, Schema] = {}
    for name in (field.name for field in dataclasses.fields(cls)):  # type: ignore[arg-type]
        hint = hints[name]
        if get_origin(hint) is not Annotated:
            continue
        base, doc = get_args(hint)[:2]
        options = get_args(base) if get_origin(base) in (Union, UnionType) else (base,)
        json_types, one_of = [], ()
        for option in options:
            if get_origin(option) is Literal:
                json_types.append("string")
                one_of = get_args(option)
            else:
                json_types.append(_JSON_TYPES[option])
        minimum = -SAFE_INTEGER if doc.minimum is None else doc.minimum
        keys[name] = _key("|".join(json_types), doc.text, minimum, one_of)
    return keys


_JSON_TYPES: Final[dict[object, str]] = {int: "integer", str: "string", bool: "boolean", type(None): "null"}


def _alarm_doc(cls: type[AlarmEvidence]) -> AlarmDoc:
    """An alarm kind's documentation from its evidence class: the docstring's first paragraph says when it is
    raised, the second when it is cleared."""
    raised, cleared = (" ".join(part.split()) for part in inspect.cleandoc(cls.__doc__ or "").split("\n\n"))
    cleared_by = cls.cleared_by
    return AlarmDoc(
        subject=cls.subject,
        raised=raised,
        cleared=cleared,
        evidence=_evidence_keys(cls),
        cleared_evidence=None if cleared_by is None else _evidence_keys(cleared_by),
        cleared_patterns={}
        if cleared_by is None
        else {
            pattern: _key("integer", doc.text, -SAFE_INTEGER if doc.minimum is None else doc.minimum)
            for pattern, doc in cleared_by.patterns.items()
        },
        raised_only=cls.raised_only,
    )


ALARM_KINDS: Final[dict[str, AlarmDoc]] = {str(kind): _alarm_doc(cls) for kind, cls in EVIDENCE.items()}
"""Every alarm kind the agent raises, documented from its evidence class in agent/contract/evidence.py."""


class ContractDocsError(LookupError):
    """The record bodies cannot be documented as they are: a description is missing or a type is ambiguous."""


def _integer(minimum: int = -SAFE_INTEGER) -> Schema:
    return {"type": "integer", "minimum": minimum, "maximum": SAFE_INTEGER}


def _json_value() -> Schema:
    """`$defs/json_value`: what an added body field may hold."""
    return {
        "description": "A JSON value without fraction or exponent: a string, an integer, a boolean, null, "
        "or an array or object of these.",
        "anyOf": [
            {"type": ["string", "boolean", "null"]},
            _integer(),
            {"type": "array", "items": {"$ref": "#/$defs/json_value"}},
            {"type": "object", "additionalProperties": {"$ref": "#/$defs/json_value"}},
        ],
    }


def _extra_fields() -> Schema:
    return {"$ref": "#/$defs/json_value"}


def _document(file_name: str, title: str, description: str, schema: Schema) -> Schema:
    return {"$schema": DIALECT, "$id": BASE_ID + file_name, "title": title, "description": description, **schema}


def _tidy(node: Schema, defs: Schema) -> Schema:
    """Pydantic's schema made plain: no titles or defaults, local refs inlined, nullable types as type lists."""
    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[1]]
    branches = node.get("anyOf", [])
    if branches and all(branch.keys() == {"type"} for branch in branches):
        node = {key: value for key, value in node.items() if key != "anyOf"}
        node["type"] = [branch["type"] for branch in branches]
    tidy: Schema = {}
    for key, value in node.items():
        if key in ("title", "default", "$defs"):
            continue
        if key == "properties":
            tidy[key] = {name: _tidy(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            tidy[key] = _tidy(value, defs)
        elif key == "anyOf":
            tidy[key] = [_tidy(sub, defs) for sub in value]
        else:
            tidy[key] = value
    types = tidy.get("type")
    if types == "integer" or (isinstance(types, list) and "integer" in types):
        tidy.update(minimum=-SAFE_INTEGER, maximum=SAFE_INTEGER)
    return tidy


def body_name(cls: type[Body]) -> str:
    """The name a body goes by in the contract: its event kind for events, else its record type."""
    if cls.record_type is RecordType.EVENT:
        kind = next(field for field in dataclasses.fields(cls) if field.name == "kind")  # type: ignore[arg-type]
        return str(kind.default)
    return str(cls.record_type)


def _described(what: str, table: dict[str, str], *keys: str) -> str:
    for key in keys:
        if key in table:
            return table[key]
    raise ContractDocsError(f"{what} has no description; add one under {keys[0]!r} in lab/station_lab/contract_docs.py")


def _nested(schema: Schema, name: str, parent: str, where: str) -> Schema:
    """An object inside a body (or the items of an array of them) held to the body's own rules: every field
    described, required, and patterned, other keys only as JSON without floats. A nested field is described
    under `<body>.<parent field>.<field>`, or under `<body>.<field>` where one text fits every parent; never
    under the bare field name, whose text belongs to a top-level field of some body."""
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return {**schema, "items": _nested(schema["items"], name, parent, where)}
    if "properties" not in schema:
        return schema
    properties: Schema = {}
    for field, sub in schema["properties"].items():
        keys = (f"{name}.{parent}.{field}", f"{name}.{field}")
        text = _described(f"{where}.{parent}.{field}", _FIELDS, *keys)
        properties[field] = {**_nested(sub, name, field, where), "description": text}
        if field in _PATTERNS:
            properties[field]["pattern"] = _PATTERNS[field]
    return {**schema, "properties": properties, "required": list(properties), "additionalProperties": _extra_fields()}


def body_schema(cls: type[Body]) -> Schema:
    """The wire schema of one body class (not a whole document: see `schemas` for the files)."""
    name = body_name(cls)
    raw = TypeAdapter(cls).json_schema()
    tidy = _tidy(raw, raw.get("$defs", {}))
    properties: Schema = {}
    for field, schema in tidy["properties"].items():
        text = _described(f"{cls.__name__}.{field}", _FIELDS, f"{name}.{field}", field)
        properties[field] = {**_nested(schema, name, field, cls.__name__), "description": text}
        if field in _PATTERNS:
            properties[field]["pattern"] = _PATTERNS[field]
    return {
        "title": f"{name} body",
        "description": _described(cls.__name__, _BODIES, name),
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": _extra_fields(),
    }


def _bodies_by_type() -> dict[RecordType, list[type[Body]]]:
    grouped: dict[RecordType, list[type[Body]]] = {}
    for cls in BODY_TYPES:
        grouped.setdefault(cls.record_type, []).append(cls)
    return grouped


def _event_schema(classes: list[type[Body]]) -> Schema:
    kinds = {body_name(cls): cls for cls in classes}
    missing = sorted(set(EventKind) - kinds.keys())
    if missing:
        raise ContractDocsError(f"event kinds {missing} have no body class in agent.contract.records.BODY_TYPES")
    defs: Schema = {kind: body_schema(cls) for kind, cls in kinds.items()}
    return _document(
        "event.json",
        "event body",
        "Something that happened to the agent or its devices. One of the event kinds, chosen by `kind`.",
        {
            "type": "object",
            "required": ["kind"],
            "properties": {"kind": {"enum": list(kinds), "description": _FIELDS["kind"]}},
            "oneOf": [{"$ref": f"#/$defs/{kind}"} for kind in kinds],
            "$defs": {**defs, "json_value": _json_value()},
        },
    )


def _evidence_schema(when: str, keys: dict[str, Schema], patterns: dict[str, Schema]) -> Schema:
    schema: Schema = {"description": f"The evidence {when}.", "type": "object", "properties": keys}
    if patterns:
        schema["patternProperties"] = patterns
    return {**schema, "required": list(keys)}


def _alarm_kind_schema(kind: AlarmDoc) -> Schema:
    """The subject and evidence of one alarm kind; its evidence may hold further keys (an allowed addition)."""
    schema: Schema = {
        "description": f"Subject: {kind.subject}. {kind.raised} {kind.cleared}",
        "properties": {"subject": {"description": kind.subject[0].upper() + kind.subject[1:] + "."}},
    }
    if kind.cleared_evidence is None:
        schema["properties"]["evidence"] = _evidence_schema("when raised and when cleared", kind.evidence, {})
        return schema
    cleared = _evidence_schema("when cleared", kind.cleared_evidence, kind.cleared_patterns)
    return {
        **schema,
        "if": {"properties": {"state": {"const": "raised"}}},
        "then": {"properties": {"evidence": _evidence_schema("when raised", kind.evidence, {})}},
        "else": {"properties": {"evidence": cleared}},
    }


def _single_body_schema(record_type: RecordType, cls: type[Body]) -> Schema:
    body = body_schema(cls)
    title, description = body.pop("title"), body.pop("description")
    defs: Schema = {"json_value": _json_value()}
    if record_type is RecordType.ALARM:
        body["allOf"] = [
            {"if": {"required": ["kind"], "properties": {"kind": {"const": name}}}, "then": {"$ref": f"#/$defs/{name}"}}
            for name in ALARM_KINDS
        ]
        defs.update({name: _alarm_kind_schema(kind) for name, kind in ALARM_KINDS.items()})
    return _document(f"{record_type}.json", title, description, {**body, "$defs": defs})


def _record_type_description(typed: Sequence[RecordType], reserved: Sequence[str]) -> str:
    """The envelope's `type` text: the reserved types are named only while there are some, so that the text
    never ends in an empty list."""
    described = f"The record type: {', '.join(map(str, typed))}"
    if reserved:
        described += f"; reserved in v1, body not yet specified: {', '.join(reserved)}"
    return described + ". Receivers store records of types they do not know."


def _record_schema(typed: Sequence[RecordType]) -> Schema:
    reserved = [str(kind) for kind in RecordType if kind not in typed]
    dispatch = [
        {
            "if": {"required": ["type"], "properties": {"type": {"const": str(kind)}}},
            "then": {"properties": {"body": {"$ref": f"{kind}.json"}}},
        }
        for kind in typed
    ]
    return _document(
        "record.json",
        "record",
        "One signed, hash-chained record of a station (the envelope). Its RFC 8785 canonical bytes are what is "
        "signed and what the next record's prev is the hash of (SHA-256, or SM3 for a record an SM2 key signed).",
        {
            "type": "object",
            "properties": {
                "v": {"const": CONTRACT_VERSION, "description": "The contract version."},
                "station": {
                    "type": "string",
                    "pattern": f"^{STATION_ID.regex}$",
                    "description": "The station id, as registered with the platform; also a topic level.",
                },
                "seq": {
                    **_integer(1),
                    "description": "1 for the station's first record, then +1 for every record of every type; "
                    "never reused, never skipped.",
                },
                "ts": {
                    "type": "string",
                    "pattern": TS_PATTERN,
                    "description": "When it happened, by the agent's clock: RFC 3339 UTC with milliseconds.",
                },
                "type": {
                    "type": "string",
                    "minLength": 1,
                    "description": _record_type_description(typed, reserved),
                },
                "body": {
                    "type": "object",
                    "additionalProperties": _extra_fields(),
                    "description": "Per type; quantities are integers in small units, never floats.",
                },
                "prev": {
                    "type": "string",
                    "pattern": HEX64_PATTERN,
                    "description": "Lowercase hex hash of the canonical bytes of record seq - 1, in the suite of "
                    "the key that signed that record: SHA-256 (Ed25519) or SM3 (SM2, v1.2); 64 zeros for seq 1. A "
                    "chain_reset (v1.1) names record body.known_seq instead.",
                },
            },
            "required": ["v", "station", "seq", "ts", "type", "body", "prev"],
            "additionalProperties": False,
            "allOf": dispatch,
            "$defs": {"json_value": _json_value()},
        },
    )


def _records_message_schema() -> Schema:
    return _document(
        "records-message.json",
        "records message",
        "The payload on {prefix}/{station}/records: one or more signed records of one key, ascending and "
        "contiguous in seq.",
        {
            "type": "object",
            "properties": {
                "kid": {
                    "type": "string",
                    "pattern": KID_PATTERN,
                    "description": "The key that signed every record of this message, which also names its "
                    "suite: for Ed25519, lowercase hex of the first 8 bytes of SHA-256 of the 32-byte raw public "
                    "key; for SM2 (v1.2), sm2- and lowercase hex of the first 8 bytes of SM3 of the 65-byte "
                    "uncompressed public point.",
                },
                "records": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "record": {"$ref": "record.json"},
                            "sig": {
                                "type": "string",
                                "pattern": SIG_PATTERN,
                                "description": "Signature of the record's canonical bytes in the kid's suite, 64 "
                                "bytes either way: Ed25519, or (v1.2) SM2 with SM3 and the distinguishing ID "
                                "1234567812345678 as r || s, 32 bytes each, big-endian; in "
                                "standard base64 with padding (RFC 4648 section 4), unused bits zero.",
                            },
                        },
                        "required": ["record", "sig"],
                        "additionalProperties": False,
                    },
                    "description": "The records, seq ascending by one from the first to the last.",
                },
            },
            "required": ["kid", "records"],
            "additionalProperties": False,
        },
    )


def _ack_schema() -> Schema:
    return _document(
        "ack.json",
        "ack",
        "The payload on {prefix}/{station}/ack, from the platform. The agent ignores other keys.",
        {
            "type": "object",
            "properties": {
                "upto": {
                    **_integer(0),
                    "description": "The platform has durably stored every record with seq <= upto (0: none yet).",
                }
            },
            "required": ["upto"],
        },
    )


def _status_schema() -> Schema:
    return _document(
        "status.json",
        "status",
        "The payload on {prefix}/{station}/status, retained: the birth message on connect and on every change "
        "of faults (online), the goodbye on a clean stop (offline, reason stopped), and the last will the broker "
        "publishes when the connection is lost (offline, reason connection_lost, only state, reason and "
        "client_id). Not signed: the records are the evidence, the status is a convenience.",
        {
            "type": "object",
            "properties": {
                "state": {"enum": ["online", "offline"], "description": "Whether the agent is connected."},
                "ts": {
                    "type": "string",
                    "pattern": TS_PATTERN,
                    "description": "When the agent published this status, by its clock. Not in the will.",
                },
                "faults": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Each of `problems` as `kind subject` (e.g. `metering_deviation D01-N2`); empty "
                    "when healthy. Not in the will.",
                },
                "health": {
                    "enum": ["ok", "starting", "degraded", "fault", "stopped"],
                    "description": "The agent's health, as `station-agent status` says it (docs/contract.md, Status). "
                    "Not in the will.",
                },
                "problems": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "kind": {"type": "string", "description": "What is wrong (an open set)."},
                            "severity": {"enum": ["fault", "degraded", "starting"], "description": "Its health."},
                            "subject": {"type": "string", "description": "The nozzle, tank, device, line, …"},
                            "since": {"type": ["string", "null"], "description": "When it began; null if unknown."},
                            "advice": {"type": "string", "description": "The key of the words said to staff."},
                            "size": {"type": ["integer", "null"], "description": "How big, in `unit`."},
                            "unit": {"type": ["string", "null"], "description": "The unit of `size`."},
                            "members": {
                                "type": "array",
                                "items": {"type": "string"},
                                "description": "The devices a `line_down` stands for.",
                            },
                            "detail": {"type": ["string", "null"], "description": "Technical text, not advice."},
                        },
                        "required": ["kind", "severity", "subject", "since", "advice", "size", "unit"],
                        "description": "One problem, as in docs/contract/status-command.json.",
                    },
                    "description": "Every cause that keeps the agent from `ok`, worst first. Not in the will.",
                },
                "kid": {"type": "string", "pattern": KID_PATTERN, "description": "The key id the agent signs with."},
                "version": {"type": "string", "description": "The agent's software version."},
                "head_seq": {**_integer(0), "description": "The seq of the last record the agent has made."},
                "reason": {
                    "type": "string",
                    "description": "Offline only: `stopped` (a clean stop) or `connection_lost` (the will).",
                },
                "client_id": {"type": "string", "description": "The will only: the agent's MQTT client id."},
            },
            "required": ["state"],
        },
    )


def schemas() -> dict[str, Schema]:
    """Every schema file of the contract, by file name."""
    grouped = _bodies_by_type()
    files: dict[str, Schema] = {
        "record.json": _record_schema(list(grouped)),
        "records-message.json": _records_message_schema(),
        "ack.json": _ack_schema(),
        "status.json": _status_schema(),
    }
    for record_type, classes in grouped.items():
        if record_type is RecordType.EVENT:
            files["event.json"] = _event_schema(classes)
        elif len(classes) == 1:
            files[f"{record_type}.json"] = _single_body_schema(record_type, classes[0])
        else:
            names = [cls.__name__ for cls in classes]
            raise ContractDocsError(f"record type {record_type} has several bodies {names} but no discriminator")
    return files


def render(schema: Schema) -> str:
    """The file text: sorted keys, 2-space indent, UTF-8, a trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def differences(directory: Path) -> list[str]:
    """Files in `directory` that are missing, differ from what `write` would make, or are not made by it."""
    expected = {name: render(schema) for name, schema in schemas().items()}
    problems = []
    for name, text in sorted(expected.items()):
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs")
    if directory.is_dir():
        problems += [
            f"{path}: not generated (remove it)"
            for path in sorted(directory.glob("*.json"))
            if path.name not in expected
        ]
    return problems


def write(directory: Path) -> list[Path]:
    """Write every schema file into `directory`; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in sorted(schemas().items()):
        path = directory / name
        path.write_text(render(schema), encoding="utf-8", newline="\n")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m station_lab.contract_docs", description="Write the JSON Schemas of platform contract v1."
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file would change or is stale"
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"the schema folder (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    try:
        if not args.check:
            for path in write(args.dir):
                print(path)
        problems = differences(args.dir)
    except ContractDocsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems and args.check:
        print("regenerate with: python -m station_lab.contract_docs", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
