"""Build hook: ship the repository's top-level models.toml inside the package.

The catalogue lives at the root of the repository, beside pyproject.toml; a wheel carries
it as ``llamaembed/models.toml`` (this copy is made in the build folder only), and an
editable install or a source checkout reads the root file itself (``hub.registry``).
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CATALOGUE = "models.toml"


class BuildWithCatalogue(build_py):
    """build_py that also copies the root catalogue into the built package."""

    def run(self) -> None:
        """Build the package, then copy the catalogue in (not for editable installs)."""
        super().run()
        if not getattr(self, "editable_mode", False):
            target = Path(self.build_lib) / "llamaembed" / CATALOGUE
            self.copy_file(CATALOGUE, str(target))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        """Return the built files, the copied catalogue among them."""
        outputs = list(super().get_outputs(include_bytecode))
        if not getattr(self, "editable_mode", False):
            outputs.append(str(Path(self.build_lib) / "llamaembed" / CATALOGUE))
        return outputs


setup(cmdclass={"build_py": BuildWithCatalogue})
