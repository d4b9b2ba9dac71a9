"""Detection quality of the leak and unrecorded-sales detector (`agent.station.leak`) on simulated tank-months.

`python -m bench.detect` (what `make bench-detect` runs) prints one JSON document on stdout and its progress on
stderr: per scenario the probability of detection, the false-alarm rate, the share of `inconclusive` answers
and the time to detection, against the US EPA bar for tank gauges. Seeds are fixed, so a run is reproducible
to the digit. `docs/detection.md` explains the method and the figures.

Modules, one job each: `tank` (the tank's geometry and the fuel's thermal expansion), `month` (a simulated
tank-month: the true tank and the books the agent keeps of it), `trial` (one month fed to the detector, with
the verdict asked every hour), `score` (trials into shares with their intervals, and the targets).
"""
