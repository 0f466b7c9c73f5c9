"""Package list for setuptools; everything else is in pyproject.toml.

The top-level ``configs/`` (presets) and ``cuda/`` (kernel sources, built on first use) ship in the
wheel as ``recon/_configs`` and ``recon/_cuda`` (``package-dir`` in pyproject.toml). pyproject's
``packages.find`` cannot add such renamed packages to the discovered ones, and a hand-written list
would silently drop every new subpackage, so the list is built here.
"""

from setuptools import find_namespace_packages, setup

setup(packages=find_namespace_packages(include=["recon*", "viewer*"]) + ["recon._configs", "recon._cuda"])
