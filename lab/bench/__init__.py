"""Benchmarks of the agent's hot paths, each figure beside the same machine's raw limit measured in the same run.

`python -m bench` (what `make bench` runs) prints one JSON document on stdout and its progress on stderr. A
figure alone says little on a box shared with other work; the raw limit beside it (bare Ed25519, bare SQLite,
bare paho) says how much of the machine the agent turns into records, and the ratio is what should hold from
one machine to the next. `docs/benchmarks.md` explains every figure and how it is measured.

Modules, one job each: `scale` (how big each run is), `report` (results and targets as JSON), `machine`,
`procfs` (CPU time, memory and I/O counters of a process), `workload` (realistic records), `parts` (the raw
limits), `processes` (child processes and the broker), `rig` (the recorder and uplink wired as the daemon wires
them), `agent_run` (the real agent process beside its simulated station), `forecourt` (simulated dispensers on
RS-485 lines, as config text), `bare_line` (the raw limit of a Modbus RTU line: bare pyserial), `publisher` and
`watcher` (plain paho scripts run as their own processes), and one module per figure: `ledger`, `uplink`,
`full_path`, `drain`, `agent_process` (rss), `disk`, `bus`, `poll_cost`.
"""
