"""Print the part of a lock a set of top-level requirements needs, versions unchanged.

    python requirements/runtime_subset.py requirements/runtime.in requirements/dev.lock

Run it with the Python of an environment where the dev lock is installed (``make lock`` runs it
in the environment it has just frozen): it follows each requirement of ``runtime.in`` through
the installed packages' metadata (their ``Requires-Dist``, with markers and extras evaluated
for this interpreter), and prints the dev lock's lines of every package reached, in the dev
lock's order. The result pins the same versions as the dev lock by construction, and holds
everything the runtime set imports: no package of it is missing, none is added.

It fails when a package reached is not installed, its installed version is not the one the
dev lock pins, or it does not satisfy the requirement that reached it.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# pip freeze leaves these out of every lock; a requirement on them is met by the installer.
NOT_FROZEN = frozenset({"pip", "setuptools", "wheel", "distribute"})


def read_requirements(path: Path) -> list[Requirement]:
    """The requirements of a ``.in`` file, following its ``-r`` includes."""
    found: list[Requirement] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            found += read_requirements(path.parent / line.split(None, 1)[1])
        elif line.startswith("-"):
            raise SystemExit(f"{path}: option not understood here: {line}")
        else:
            found.append(Requirement(line))
    return found


def read_lock(path: Path) -> dict[str, tuple[str, str]]:
    """Canonical name -> (the lock's line, the pinned version)."""
    pins: dict[str, tuple[str, str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise SystemExit(f"{path}: not a pin: {line}")
        pins[canonicalize_name(name)] = (line, version.strip())
    return pins


def closure(requirements: list[Requirement]) -> set[str]:
    """Canonical names of every installed package ``requirements`` need, themselves included."""
    needed: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(req, "the top-level requirements") for req in requirements]
    while queue:
        req, reached_from = queue.pop()
        name = canonicalize_name(req.name)
        if name in NOT_FROZEN:
            continue
        extras = frozenset(canonicalize_name(extra) for extra in req.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{req} (needed by {reached_from}) is not installed") from None
        if not req.specifier.contains(dist.version, prereleases=True):
            raise SystemExit(f"{name} {dist.version} does not satisfy {req} ({reached_from})")
        needed.add(name)
        for spec in dist.requires or []:
            dep = Requirement(spec)
            if dep.marker is None or any(
                dep.marker.evaluate({"extra": extra}) for extra in ("", *extras)
            ):
                queue.append((dep, f"{name} {dist.version}"))
    return needed


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    runtime_in, dev_lock = map(Path, argv)
    pins = read_lock(dev_lock)
    needed = closure(read_requirements(runtime_in))
    problems = [f"{name} is needed but not pinned in {dev_lock}" for name in needed - pins.keys()]
    problems += [
        f"{name}: {dev_lock} pins {pins[name][1]}, {metadata.version(name)} is installed"
        for name in sorted(needed & pins.keys())
        if metadata.version(name) != pins[name][1]
    ]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    for name, (line, _) in pins.items():
        if name in needed:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
