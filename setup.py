"""Package mapping only (metadata is in pyproject.toml): the repository's folders become one
distribution, `optrepro`: common/ -> optrepro, papers/ -> optrepro.papers, envs/ -> optrepro.envs,
configs/ -> optrepro.configs. pyproject.toml cannot rename folders found by `packages.find`, so the
package list is computed here; a new paper is packaged without editing anything."""
from setuptools import find_namespace_packages, setup

MAP = {"optrepro": "common", "optrepro.papers": "papers", "optrepro.envs": "envs", "optrepro.configs": "configs"}
EXCLUDE = ["*__pycache__*"]
packages = []
for pkg, folder in MAP.items():
    packages += [pkg] + [f"{pkg}.{sub}" for sub in find_namespace_packages(folder, exclude=EXCLUDE)]

setup(packages=packages, package_dir=MAP)
