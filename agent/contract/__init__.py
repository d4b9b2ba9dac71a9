"""Platform contract v1 as types: the record bodies, the alarm evidence, canonical bytes and their decoding."""
