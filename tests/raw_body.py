"""A record body given as JSON, for tests of sealing, storing and sending that need bodies no body class makes:
a float, an integer beyond 2^53, padding of a given size, keys in a given order."""

from __future__ import annotations

from agent.contract.records import Body, JsonValue


class RawBody(Body):
    """Seals as exactly the JSON it was given."""

    def __init__(self, json: dict[str, JsonValue]) -> None:
        self.json = json

    def as_json(self) -> dict[str, JsonValue]:
        return self.json
