"""A city's HJ 212 profile: which of our records go out, under which CN, with which codes.

Ecology bureaus agree on the envelope but each city registers its own codes for a filling station (Chongqing:
ST=31, CN=3020, `i41020-Info` for A/L, `i41028-Info` for tank pressure in Pa). So the codes are data, a TOML
file an installer can change, and the agent maps record fields to them by name: a field the profile names
but a record lacks (a record type still growing) is left out rather than guessed. Checked with pydantic at
the edge (`profile_validation`), like device profiles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from drivers.schema import Ge, Le, Matches, MinLen, doc, settings
from drivers.shipped import shipped_dirs

_CODE = Matches("a code of letters, digits and '_', e.g. 'i41020'", r"[A-Za-z][A-Za-z0-9_]{0,31}")
_SAFE_TEXT = Matches("text without ; , = & or line breaks", r"[^;,=&\r\n]*")
_NOZZLE_CODE = Matches(
    "a template of {station}, {gun} or {gun:0Nd} and text without ; , = & { }, e.g. '{station}{gun:03d}'",
    r"(?:[^;,=&{}\r\n]|\{station\}|\{gun(?::0[1-9]d)?\})*\{gun(?::0[1-9]d)?\}(?:[^;,=&{}\r\n]|\{station\}|\{gun(?::0[1-9]d)?\})*",
)


@settings
class ItemMapping:
    """One CP item: a record body's field under a city code."""

    code: Annotated[str, _CODE] = doc("the city's code for this value, e.g. 'i41020'")
    field: Annotated[str, MinLen(1)] = doc("the record body's field whose value is sent, e.g. 'al_permille'")
    suffix: Annotated[str, Matches("letters, e.g. 'Info', 'Rtd', 'Avg'", r"[A-Za-z]{1,8}")] = doc(
        "what follows the code and a '-': 'Info' for site information (CN=3020), 'Rtd'/'Avg' for data",
        default="Info",
    )
    scale: Annotated[int, Ge(0), Le(9)] = doc(
        "powers of ten the integer field is divided by: 3 turns per-mille into a ratio (1050 -> 1.050)",
        default=0,
    )
    decimals: Annotated[int, Ge(0), Le(9)] | None = doc(
        "digits after the decimal point on the wire, rounded half-even (default: `scale`)", default=None
    )
    values: dict[str, Annotated[str, _SAFE_TEXT]] | None = doc(
        "for a text field, the city's word for each of our values, e.g. {pass = '0', alarm = '2'}", default=None
    )
    required: bool = doc(
        "if the record lacks this field or it is null, the record is not sent (else only the item is left out)",
        default=True,
    )

    @property
    def key(self) -> str:
        return f"{self.code}-{self.suffix}"


@settings
class RecordMapping:
    """How one record type goes out: its CN, the moment in DataTime and its items."""

    record_type: Annotated[str, Matches("a record type, e.g. 'transaction'", r"[a-z_]{1,32}")] = doc(
        "our record type, e.g. 'transaction', 'vapour', 'tank_pressure'"
    )
    cn: Annotated[str, Matches("four digits", r"[0-9]{4}")] = doc("the HJ 212 command code, e.g. '3020'")
    time_field: Annotated[str, MinLen(1)] | None = doc(
        "the body field (RFC 3339 time or YYYY-MM-DD date) that becomes DataTime; default the record's ts",
        default=None,
    )
    where: dict[str, str] | None = doc(
        "send only records whose body fields have these values, e.g. {period = 'interval'}", default=None
    )
    items: Annotated[tuple[ItemMapping, ...], MinLen(1)] = doc("the CP items, in order")

    def selects(self, body: dict[str, object]) -> bool:
        """Whether a record of this type with this body is one the city wants (see `where`)."""
        return self.where is None or all(str(body.get(name)) == value for name, value in self.where.items())


@settings
class CityProfile:
    """A city's HJ 212 codes for a filling station."""

    name: Annotated[str, MinLen(1)] = doc("the profile's name, e.g. 'Chongqing'")
    st: Annotated[str, Matches("two digits", r"[0-9]{2}")] = doc("the system code ST, e.g. '31'")
    records: Annotated[tuple[RecordMapping, ...], MinLen(1)] = doc("the record types sent, one mapping each")
    nozzle_code: Annotated[str, _NOZZLE_CODE] | None = doc(
        "how a nozzle is named on the wire: {station} (the station's code, MN) and {gun} (the nozzle's gun "
        "number, 1-based in the config's order), with a width for the number, e.g. '{station}{gun:03d}'; "
        "none: the nozzle's id in the config",
        default=None,
    )

    def __post_init__(self) -> None:
        types = [mapping.record_type for mapping in self.records]
        repeated = sorted({name for name in types if types.count(name) > 1})
        if repeated:
            raise ValueError(f"record type(s) {', '.join(repeated)} mapped more than once; merge their items")

    def code_of_nozzle(self, station: str, gun: int) -> str | None:
        """The nozzle's code by the city's format, or None if the profile has none."""
        if self.nozzle_code is None:
            return None
        return self.nozzle_code.format(station=station, gun=gun)

    def mapping_for(self, record_type: str) -> RecordMapping | None:
        return next((mapping for mapping in self.records if mapping.record_type == record_type), None)

    def known_keys(self, cn: str) -> frozenset[str]:
        """Every CP key this profile sends under `cn` (DataTime included): what a platform accepts."""
        keys = {"DataTime"}
        for mapping in self.records:
            if mapping.cn == cn:
                keys.update(item.key for item in mapping.items)
        return frozenset(keys)

    @property
    def commands(self) -> frozenset[str]:
        return frozenset(mapping.cn for mapping in self.records)


def shipped_city_profile(name: str) -> Path:
    """The path of a city profile that ships with station-agent, e.g. `chongqing`; FileNotFoundError names where
    it was looked for."""
    directories = shipped_dirs("hj212")
    for directory in directories:
        if (path := directory / f"{name}.toml").is_file():
            return path
    raise FileNotFoundError(f"no shipped HJ 212 city profile {name!r} in {', '.join(map(str, directories)) or 'none'}")
