"""Package layout: the top-level folders drivers/, templates/ and isos/ are installed inside the
`machine` namespace (machine.drivers, machine.templates, machine.isos), so no generic top-level
`drivers` module lands in site-packages. Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

MAPPED = {"machine": "machine", "machine.drivers": "drivers"}
packages = []
package_dir = {}
for prefix, folder in MAPPED.items():
    package_dir[prefix] = folder
    packages.append(prefix)
    packages += [f"{prefix}.{sub}" for sub in find_packages(folder)]
# data-only folders
package_dir["machine.templates"] = "templates"
package_dir["machine.isos"] = "isos"
packages += ["machine.templates", "machine.isos"]

setup(packages=packages, package_dir=package_dir)
