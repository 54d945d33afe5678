"""Build glue, only for what pyproject.toml cannot say: the top-level ``data/registry.yaml``
(the download registry, one file in the repository) ships inside the package as
``debiaslab/data_registry/registry.yaml``. pyproject.toml cannot both discover the packages
under ``src/`` and map one more package onto another folder, so both live here; the files that
package holds are listed in pyproject's ``package-data``. See data/README.md.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(where="src"), "debiaslab.data_registry"],
    package_dir={"": "src", "debiaslab.data_registry": "data"},
)
