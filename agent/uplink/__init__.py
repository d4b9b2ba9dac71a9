"""The uplink: records leave the outbox for the platform over MQTT, in order, and are marked done on ack.

`messages` builds and parses the payloads of the contract, `planner` decides which records go next (pure),
`session` is the MQTT connection with its reconnects, acks and status topic.
"""
