"""HJ 212 (HJ 212-2017 and HJ 212-2025), the data link Chinese ecology platforms take, without I/O.

`frame` is the envelope (`##`, length, CRC, CRLF), `packet` the data segment inside it (QN, ST, CN, PW, MN,
Flag, CP), `profile` a city's codes. Sockets live with the callers: the agent's client and the simulated
platform.
"""
