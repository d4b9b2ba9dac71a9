"""The one build step pyproject.toml cannot declare: the staff's message catalogues, compiled from .po to .mo.

The compiler is agent/locale's own (loaded from its file, so the build needs nothing of the agent's
dependencies), which writes what GNU msgfmt writes; so neither gettext tools nor Babel are needed to build.
"""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CATALOGUES = Path(__file__).resolve().parent / "agent" / "locale" / "__init__.py"


class BuildWithCatalogues(build_py):
    def run(self) -> None:
        super().run()
        spec = importlib.util.spec_from_file_location("station_agent_catalogues", CATALOGUES)
        assert spec is not None and spec.loader is not None
        catalogues = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(catalogues)
        for written in catalogues.compile_all(Path(self.build_lib) / "agent" / "locale"):
            self.announce(f"compiled {written}", level=2)


setup(cmdclass={"build_py": BuildWithCatalogues})
