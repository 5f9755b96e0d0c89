"""What a wheelhouse built by one Python lacks for another of the same minor version.

    python3.11 scripts/wheelhouse_gaps.py WHEELHOUSE 3.11.2     # one requirement a line

``pip wheel`` evaluates environment markers for the Python that runs it (``--python-version``
changes which wheels fit, not the markers), so a wheelhouse built with the host's 3.11.7 for an
image whose Python is Debian bookworm's 3.11.2 misses what only older micro versions need
(``redis`` wants ``async-timeout`` below 3.11.3). This lists the requirements, of any wheel in
the wheelhouse, whose markers hold for ``VERSION`` but not for this Python, and which no wheel
there provides: ``scripts/image_check.sh`` builds those wheels too, until none is missing.
"""

from __future__ import annotations

import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename


def requirements(wheel: Path) -> list[Requirement]:
    """The wheel's ``Requires-Dist`` lines."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist()
                        if name.endswith(".dist-info/METADATA") and name.count("/") == 1)
        fields = Parser().parsestr(archive.read(metadata).decode())
    return [Requirement(line) for line in fields.get_all("Requires-Dist") or []]


def gaps(house: Path, version: str) -> list[str]:
    wheels = {canonicalize_name(parse_wheel_filename(w.name)[0]): w for w in house.glob("*.whl")}
    needs = [(name, need) for name, wheel in wheels.items() for need in requirements(wheel)]
    extras: dict[str, set[str]] = {}  # the extras asked of each distribution
    for _, need in needs:
        extras.setdefault(canonicalize_name(need.name), set()).update(need.extras)
    here: dict[str, str] = dict(default_environment())
    there = here | {"python_full_version": version,
                    "python_version": ".".join(version.split(".")[:2])}
    missing: set[str] = set()
    for name, need in needs:
        if need.marker is None or canonicalize_name(need.name) in wheels:
            continue
        for extra in {"", *extras.get(name, ())}:
            if (need.marker.evaluate(there | {"extra": extra})
                    and not need.marker.evaluate(here | {"extra": extra})):
                need.marker = None
                missing.add(str(need))
                break
    return sorted(missing)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    for line in gaps(Path(argv[1]), argv[2]):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
