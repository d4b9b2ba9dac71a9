"""`station-sim tank-chart --config simulators.toml TANK`: a simulated tank's chart as the agent's config takes it.

The simulated tank's shape is its chart (`simulators.tank_chart`), so the agent must use the very same rows
for a level probe's heights to give the simulated volumes: this prints them as `height_mm,volume_l` CSV,
ready for the agent's `chart_file` (the one `station-sim` command whose output is not JSON: it is the file).
Exit status 2 for a bad config or tank, with one JSON line `{"error": ...}` on stdout instead of the CSV.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulators.config import SimulatorsConfigError, load_simulators_config
from simulators.exits import cannot_run


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "tank-chart",
        help="print a simulated tank's chart as height_mm,volume_l CSV (for the agent's chart_file)",
        description="Print the strapping chart of one [[tanks]] entry of a simulators config as CSV.",
    )
    parser.add_argument("--config", type=Path, required=True, help="simulators.toml")
    parser.add_argument("tank", help="the tank's id, e.g. T1")
    parser.set_defaults(handler=tank_chart)


def tank_chart(args: argparse.Namespace) -> int:
    try:
        config = load_simulators_config(args.config)
    except SimulatorsConfigError as exc:
        return cannot_run("tank-chart", str(exc))
    section = next((tank for tank in config.tanks if tank.id == args.tank), None)
    if section is None:
        known = ", ".join(tank.id for tank in config.tanks) or "none"
        return cannot_run("tank-chart", f"no tank {args.tank!r} in {args.config}; tanks: {known}")
    sys.stdout.write(section.tank_chart().to_csv())
    return 0
