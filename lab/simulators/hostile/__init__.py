"""Hostile peers: the rude world a gateway meets, as servers and tools a supplier's CI can point an agent at.

- `link`: a TCP relay between the agent and its broker that drops every connection on demand or on a schedule
  (a flapping mobile link), and can delay what it carries;
- `rude_broker`: an MQTT listener that answers CONNECT with a CONNACK and hangs up, sends junk, or says nothing;
- `poison`: a catalogue of poisoned ack and command payloads (huge integers, deep nesting, oversized, not JSON,
  wrong types), published to a real broker, retained if asked;
- `rude_hj212`: an HJ 212 "platform" that answers every frame with garbage, trickles, or never answers.

Each is a `station-sim hostile ...` command (simulators/hostile/cli.py) and a Python class for tests. The Modbus
slave's and the tank gauge's rude answers (stuck_register NaN/Inf/huge, crc_noise, slow, dead, a refused report) are
faults of the forecourt
simulator (`station-sim fault kinds`).
"""
