"""Debian and Python packages that data preparation needs: installed when missing (as
root, with apt-get; into this environment, with pip), and their versions for the record."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable


def deb_version(package: str) -> str | None:
    """The installed Debian version of `package`, or None where dpkg cannot tell."""
    if shutil.which("dpkg-query") is None:
        return None
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
    )
    return result.stdout.strip() or None


def _missing_debs(packages: Iterable[str]) -> list[str]:
    if shutil.which("dpkg-query") is None:
        return list(packages)
    missing = []
    for package in packages:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
        )
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def apt_install(packages: Iterable[str]) -> str | None:
    """Install the Debian `packages` that are missing; None, or why some could not be.

    As root with apt-get only; otherwise the reason names the command to run.
    """
    missing = _missing_debs(packages)
    if not missing:
        return None
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return f"missing {' '.join(missing)}; install as root with: {' '.join(command)}"
    print(f"installing: {' '.join(command)}", file=sys.stderr)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # apt's output goes to stderr; an empty or stale package list gets one update.
    if subprocess.run(command, stdout=2, env=environment).returncode != 0:
        subprocess.run(["apt-get", "update"], stdout=2, env=environment)
        if subprocess.run(command, stdout=2, env=environment).returncode != 0:
            for package in missing:  # install what can be
                subprocess.run([*command[:4], package], stdout=2, env=environment)
    still = _missing_debs(missing)
    return f"apt-get could not install {' '.join(still)}" if still else None


def pip_install(requirements: Iterable[str]) -> str | None:
    """Install Python `requirements` that are missing into this environment with pip."""
    missing = []
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        try:
            if importlib.metadata.version(name) != (version or importlib.metadata.version(name)):
                missing.append(requirement)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
    if not missing:
        return None
    command = [sys.executable, "-m", "pip", "install", "--quiet", *missing]
    print(f"installing: pip install {' '.join(missing)}", file=sys.stderr)
    if subprocess.run(command, stdout=2).returncode != 0:
        return f"`pip install {' '.join(missing)}` failed"
    importlib.invalidate_caches()
    return None
