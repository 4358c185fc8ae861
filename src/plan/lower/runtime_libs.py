# kiln's runtime-library scan (src/plan/lower/runtime_libs.rs runs it; written for kiln).
#
# Every ELF file (by its magic bytes) under the venv is read for its DT_NEEDED entries and
# handed to `ldd`, which resolves them with the loader, search path and ld.so.cache of the
# filesystem it runs in. Two modes (--only DIR limits either to the ELF files of DIR,
# the project's prefix, read at their place in the venv):
#
#   check  run with the image's runtime branch as root (the venv at its path): each needed
#          library the loader does not find is a miss, named with the Debian package of
#          the builder (its dpkg lists under --builder) that ships a file of that name for
#          the same machine. Writes `misses` (tab-separated: where, file, soname, package)
#          and `message` (what the log shows) into --out; exits 0 when it could look.
#   auto   run in the builder: each needed library resolved outside the venv is named by
#          the package whose dpkg list holds its path; writes `packages` (one a line).
#
# Exit 3: the scan could not run (no ldd, ldd hung); its message says why.
# Python 3.6+ and the standard library only: it runs on the base's own interpreter.

import argparse
import os
import re
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

ELF_MAGIC = b"\x7fELF"
# Libraries the NVIDIA Container Toolkit mounts from the host's driver when a container
# runs (libnvidia-container's driver library lists): never in an image, always there on a
# GPU host.
DRIVER = re.compile(
    r"^(libcuda\.so|libnvidia-|libnvcuvid\.so|libnvoptix\.so|lib(GLX|EGL|GLESv1_CM|GLESv2|vdpau)_nvidia\.so)"
)
# A Debian package name (Debian Policy 5.6.7).
PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
LDD_FOUND = re.compile(r"^\s*(\S+) => (/\S*) \(0x[0-9a-fA-F]+\)\s*$")
LDD_MISSING = re.compile(r"^\s*(\S+) => not found\s*$")
# musl's ldd says so on stderr.
MUSL_MISSING = re.compile(r"Error loading shared library ([^\s:]+):")
# Section and string tables larger than this are not read (a corrupt header).
MAX_TABLE = 64 << 20
LDD_TIMEOUT_S = 120
MAX_MISSES = 1000


class ScanError(Exception):
    pass


def shipped(root):
    """The names of every file (and link) under root: the libraries the venv ships."""
    names = set()
    for _, _, files in os.walk(root):
        names.update(files)
    return names


def elf_files(root):
    """Regular files under root that start with the ELF magic, sorted; links not followed."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            try:
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                with open(p, "rb") as fh:
                    if fh.read(4) == ELF_MAGIC:
                        out.append(p)
            except OSError:
                continue
    return out


def elf_info(path):
    """(ident, needed): ident is (class, byte order, machine) or None when path is not
    ELF; needed is the DT_NEEDED names in order, [] without a dynamic section, None when
    the section headers cannot be read (then every library ldd misses counts)."""
    try:
        with open(path, "rb") as f:
            h = f.read(64)
            if len(h) < 52 or h[:4] != ELF_MAGIC or h[4] not in (1, 2) or h[5] not in (1, 2):
                return None, None
            e = "<" if h[5] == 1 else ">"
            ident = (h[4], h[5], struct.unpack_from(e + "H", h, 18)[0])
            if h[4] == 2:
                shoff = struct.unpack_from(e + "Q", h, 0x28)[0]
                shentsize, shnum = struct.unpack_from(e + "HH", h, 0x3A)
                shfmt, dynfmt = e + "IIQQQQIIQQ", e + "qQ"
            else:
                shoff = struct.unpack_from(e + "I", h, 0x20)[0]
                shentsize, shnum = struct.unpack_from(e + "HH", h, 0x2E)
                shfmt, dynfmt = e + "IIIIIIIIII", e + "iI"
            if shoff == 0 or shnum == 0 or shentsize < struct.calcsize(shfmt):
                return ident, None
            f.seek(shoff)
            table = f.read(shentsize * shnum)
            sections = [
                struct.unpack_from(shfmt, table, i * shentsize)
                for i in range(len(table) // shentsize)
            ]
            for s in sections:
                if s[1] != 6:  # SHT_DYNAMIC
                    continue
                offset, size, link = s[4], s[5], s[6]
                if link >= len(sections) or size > MAX_TABLE or sections[link][5] > MAX_TABLE:
                    return ident, None
                f.seek(sections[link][4])
                strtab = f.read(sections[link][5])
                f.seek(offset)
                dynamic = f.read(size)
                width = struct.calcsize(dynfmt)
                needed = []
                for at in range(0, len(dynamic) - width + 1, width):
                    tag, value = struct.unpack_from(dynfmt, dynamic, at)
                    if tag == 0:  # DT_NULL
                        break
                    if tag == 1:  # DT_NEEDED
                        end = strtab.find(b"\0", value)
                        if value >= len(strtab) or end < 0:
                            return ident, None
                        needed.append(strtab[value:end].decode("utf-8", "replace"))
                return ident, needed
            return ident, []
    except (OSError, struct.error):
        return None, None


def ldd(path):
    """{soname: resolved path, or None when the loader does not find it} for every
    library ldd lists (direct and indirect); {} for a file it cannot load (another
    machine's, a static one)."""
    try:
        r = subprocess.run(
            ["ldd", path],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=LDD_TIMEOUT_S,
        )
    except FileNotFoundError:
        raise ScanError(
            "`ldd` is not in this filesystem (Debian: libc-bin): the runtime-library check needs it"
        )
    except subprocess.TimeoutExpired:
        raise ScanError("ldd did not finish within %d s on %s" % (LDD_TIMEOUT_S, path))
    found = {}
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        m = LDD_MISSING.match(line)
        if m:
            found[m.group(1)] = None
            continue
        m = LDD_FOUND.match(line)
        if m:
            found[m.group(1)] = m.group(2)
    for m in MUSL_MISSING.finditer(r.stderr.decode("utf-8", "replace")):
        found[m.group(1)] = None
    return found


def scan(venv, only):
    """[(file, ident, needed, resolved)] for every ELF file under venv, in path order, or
    (only: a directory laid out as the venv, e.g. the project's prefix) for those of its
    ELF files, read where they are in the venv; ldd runs a few at a time."""
    if only:
        only = only.rstrip("/")
        files = [os.path.join(venv, os.path.relpath(f, only)) for f in elf_files(only)]
    else:
        files = elf_files(venv)
    workers = max(1, min(8, os.cpu_count() or 1))

    def one(path):
        ident, needed = elf_info(path)
        return path, ident, needed, ldd(path)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, files))


def needs(needed, resolved, ships):
    """The libraries a file needs and where they resolve: its DT_NEEDED names, or every
    library ldd lists when they could not be read. Left out: driver libraries, and the
    libraries the venv ships itself (ships: their names), whichever way they are found: a
    wheel's bundled libraries (auditwheel's `<package>.libs`, another wheel's `lib`) are
    found through the run path of what loads them first, or already loaded, which a file
    read alone does not show, and no system package is the answer for them."""
    names = needed if needed is not None else sorted(resolved)
    return [
        (n, resolved.get(n, ""))
        for n in names
        if not DRIVER.match(n) and n not in ships
    ]


def shown(venv, path):
    """path as the message names it: relative to site-packages when under it, else to
    the venv; tabs and line breaks escaped (the report is one line per miss)."""
    rel = os.path.relpath(path, venv)
    parts = rel.split(os.sep)
    if len(parts) > 3 and parts[0] in ("lib", "lib64") and parts[2] == "site-packages":
        rel = os.sep.join(parts[3:])
    return rel.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def dpkg_lists(root):
    """[(package, list file path)] of root's dpkg database; the architecture qualifier
    (`libpq5:amd64`) dropped."""
    info = os.path.join(root, "var/lib/dpkg/info")
    try:
        names = sorted(n for n in os.listdir(info) if n.endswith(".list"))
    except OSError:
        return []
    return [(n[:-5].split(":")[0], os.path.join(info, n)) for n in names]


def within(root, path, hops=40):
    """path (absolute, in root's filesystem) with its links resolved as root's own."""
    todo = [p for p in path.split("/") if p]
    done = []
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(root, *(done + [part]))
        if os.path.islink(here) and hops > 0:
            hops -= 1
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p] + todo
        else:
            done.append(part)
    return os.path.join(root, *done)


def packages_by_name(root, sonames):
    """{soname: [(path, package)]}: the files of root's packages named as a wanted soname."""
    out = {}
    if not sonames:
        return out
    for package, listed in dpkg_lists(root):
        try:
            with open(listed, "rb") as f:
                for raw in f:
                    path = raw.rstrip(b"\n").decode("utf-8", "replace")
                    base = path.rsplit("/", 1)[-1]
                    if base in sonames:
                        out.setdefault(base, []).append((path, package))
        except OSError:
            continue
    return out


def package_of(root, candidates, ident):
    """The package of the shortest path among candidates that is a library for ident's
    machine in root; '' when none is."""
    for path, package in sorted(candidates, key=lambda c: (len(c[0]), c[0], c[1])):
        if not PACKAGE.match(package):
            continue
        have, _ = elf_info(within(root, path))
        if have is not None and (ident is None or have == ident):
            return package
    return ""


def check(args):
    venv = args.venv.rstrip("/")
    # Each earlier group's venv, mounted at <groups-dir>/<index>: a file is the first
    # one's that has it, else the fallback's (the last group's, or the project's).
    groups = [os.path.join(args.groups_dir, str(i)) for i in range(args.groups)]
    fallback = args.fallback

    def where(path):
        rel = os.path.relpath(path, venv)
        for i, g in enumerate(groups):
            if os.path.lexists(os.path.join(g, rel)):
                return i
        return fallback

    misses = []
    ships = shipped(venv)
    for path, ident, needed, resolved in scan(venv, args.only):
        for soname, found in needs(needed, resolved, ships):
            if found is None:
                misses.append((where(path), path, soname, ident))
    owners = packages_by_name(args.builder, {m[2] for m in misses})
    rows = []
    for at, path, soname, ident in sorted(misses, key=lambda m: (m[0], m[2], m[1])):
        package = package_of(args.builder, owners.get(soname, []), ident)
        rows.append((at, shown(venv, path), soname, package))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "misses"), "w") as f:
        for at, path, soname, package in rows[:MAX_MISSES]:
            f.write("%d\t%s\t%s\t%s\n" % (at, path, soname, package))
    lines = []
    for at, path, soname, package in rows[:MAX_MISSES]:
        if package:
            fix = "add %s to system.runtime" % package
        else:
            fix = "no Debian package of the builder has it"
        lines.append("kiln: %s needs %s, which the image lacks: %s\n" % (path, soname, fix))
    if len(rows) > MAX_MISSES:
        lines.append("kiln: ... and %d more\n" % (len(rows) - MAX_MISSES))
    with open(os.path.join(args.out, "message"), "w") as f:
        f.write("".join(lines))
    sys.stdout.write("".join(lines) or "kiln: every library the venv's files need is in the image\n")


def normal(path):
    """A path as dpkg may list it on a merged-/usr system: without the leading /usr."""
    return path[4:] if path.startswith("/usr/") else path


def auto(args):
    venv = args.venv.rstrip("/")
    wanted = {}  # path the loader opens -> (soname, first file that needs it)
    missing = []
    ships = shipped(venv)
    for path, _, needed, resolved in scan(venv, args.only):
        for soname, found in needs(needed, resolved, ships):
            if found is None:
                missing.append((shown(venv, path), soname))
                continue
            if not found:
                continue
            real = os.path.realpath(found)
            if found.startswith(venv + "/") or real.startswith(venv + "/"):
                continue
            wanted.setdefault(found, (soname, shown(venv, path)))
    owner = {}
    keys = {normal(p) for p in wanted} | {normal(os.path.realpath(p)) for p in wanted}
    for package, listed in dpkg_lists(args.root):
        try:
            with open(listed, "rb") as f:
                for raw in f:
                    path = normal(raw.rstrip(b"\n").decode("utf-8", "replace"))
                    if path in keys:
                        owner.setdefault(path, package)
        except OSError:
            continue
    chosen = {}
    for found, (soname, needer) in sorted(wanted.items()):
        package = owner.get(normal(found)) or owner.get(normal(os.path.realpath(found)))
        if package and PACKAGE.match(package):
            chosen.setdefault(package, (soname, needer))
        else:
            print("kiln: %s (for %s) is no Debian package's file: auto leaves it out" % (found, needer))
    for needer, soname in missing:
        print("kiln: %s needs %s, which the builder lacks too: auto cannot name its package" % (needer, soname))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "packages"), "w") as f:
        for package in sorted(chosen):
            f.write(package + "\n")
    for package, (soname, needer) in sorted(chosen.items()):
        print("kiln: system.runtime auto: %s (%s, for %s)" % (package, soname, needer))


def main():
    p = argparse.ArgumentParser(prog="kiln-runtime-libs")
    sub = p.add_subparsers(dest="mode")
    c = sub.add_parser("check")
    c.add_argument("--venv", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--builder", required=True)
    c.add_argument("--groups-dir", default="/kiln/groups")
    c.add_argument("--groups", type=int, default=0)
    c.add_argument("--fallback", type=int, default=0)
    c.add_argument("--only")
    a = sub.add_parser("auto")
    a.add_argument("--venv", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--root", default="/")
    a.add_argument("--only")
    args = p.parse_args()
    try:
        if args.mode == "check":
            check(args)
        elif args.mode == "auto":
            auto(args)
        else:
            p.error("check or auto")
    except ScanError as e:
        sys.stderr.write("kiln: %s\n" % e)
        sys.exit(3)


if __name__ == "__main__":
    main()
