"""Nozzle codes on the ecology platform as the city profile says: station code and three-digit gun number."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.config_validation import load_config
from agent.ledger.outbox import StoredRecord
from agent.uplink.hj212_packets import FrameMaker, nozzle_codes
from agent.uplink.hj212_settings import Hj212Section
from drivers.hj212.frame import decode_frame
from drivers.hj212.packet import decode_packet
from drivers.hj212.profile_validation import CityProfileError, load_city_profile

CHONGQING = Path(__file__).resolve().parent.parent / "config" / "hj212" / "chongqing.toml"
EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "station.example.toml"
STATION_MN = "50011200000001"
NOZZLES = [("D01-N1", None), ("D01-N2", None), ("D02-N1", None), ("D02-N2", "A7")]


def sent_nozzle(nozzle: str, nozzles: list[tuple[str, str | None]], profile: Path = CHONGQING) -> str:
    settings = Hj212Section(port=1, pw="123456", mn=STATION_MN, profile=profile)
    maker = FrameMaker(settings, load_city_profile(profile), ZoneInfo("Asia/Shanghai"), nozzles)
    body = {"nozzle": nozzle, "end": "2026-11-27T08:15:01.000Z", "al_permille": 1050}
    document = {"v": 1, "station": "S1", "seq": 1, "ts": "2026-11-27T08:15:02.113Z", "type": "transaction"}
    stored = StoredRecord(1, "kid", json.dumps(document | {"body": body, "prev": "0" * 64}).encode(), b"sig")
    out = maker.frame_for(stored)
    assert out is not None
    return decode_packet(decode_frame(out.frame)).cp_items()["i41019-Info"]


def test_the_profile_example_gun_3_of_its_station() -> None:
    """Chongqing's own example: gun 3 of station 50011200000001 is 50011200000001003."""
    assert load_city_profile(CHONGQING).code_of_nozzle(STATION_MN, 3) == "50011200000001003"


def test_a_fuelling_names_its_nozzle_by_station_and_gun_number() -> None:
    """The third nozzle of the config goes out as the station's MN and 003, not as the agent's D02-N1."""
    assert sent_nozzle("D02-N1", NOZZLES) == "50011200000001003"
    assert sent_nozzle("D01-N1", NOZZLES) == "50011200000001001"


def test_an_explicit_code_in_the_config_wins() -> None:
    """A nozzle with its own hj212_code goes out under it, whatever the format."""
    assert sent_nozzle("D02-N2", NOZZLES) == "A7"


def test_without_a_format_or_a_known_nozzle_the_id_goes_out(tmp_path: Path) -> None:
    """A profile without nozzle_code, or a nozzle the config does not list, keeps the agent's id."""
    plain = tmp_path / "plain.toml"
    plain.write_text(CHONGQING.read_text().replace('nozzle_code = "{station}{gun:03d}"\n', ""))
    assert sent_nozzle("D02-N1", NOZZLES, plain) == "D02-N1"
    assert sent_nozzle("D09-N1", NOZZLES) == "D09-N1"


def test_codes_follow_the_config_order() -> None:
    """Guns are numbered from 1 in the station config's order, explicit codes keep their place."""
    codes = nozzle_codes(load_city_profile(CHONGQING), "S", NOZZLES)
    assert codes == {"D01-N1": "S001", "D01-N2": "S002", "D02-N1": "S003", "D02-N2": "A7"}


@pytest.mark.parametrize("template", ["{station}", "{mn}{gun:03d}", "{station};{gun}", "{gun:3d}"])
def test_a_format_without_a_gun_or_with_unknown_fields_is_refused(tmp_path: Path, template: str) -> None:
    """The format names the gun number and nothing but {station} and {gun}, with a zero-padded width."""
    path = tmp_path / "city.toml"
    path.write_text(CHONGQING.read_text().replace("{station}{gun:03d}", template))
    with pytest.raises(CityProfileError, match="nozzle_code"):
        load_city_profile(path)


def test_the_config_lists_nozzles_in_order_with_their_codes(tmp_path: Path) -> None:
    """hj212_nozzles gives every nozzle of the example config in order, with its explicit code if any."""
    text = EXAMPLE.read_text().replace('id = "D02-N2",', 'id = "D02-N2", hj212_code = "50011200000001009",', 1)
    path = tmp_path / "agent.toml"
    path.write_text(text)
    listed = load_config(path).config.hj212_nozzles()
    assert listed[-1] == ("D02-N2", "50011200000001009")
    assert all(code is None for _, code in listed[:-1])
