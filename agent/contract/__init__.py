"""Platform contract v1 as types, without I/O: the record bodies, the alarm evidence, canonical bytes, their
decoding, and the messages that carry them on the wire."""
