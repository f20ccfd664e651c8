#!/usr/bin/env python3
"""Benchmark prebuilt module packages: making them, and installing one on a fleet host.

1. Three real Debian *-dkms packages (acpi-call, bbswitch, v4l2loopback) on three kernels
   (the 6.1, 6.1-cloud and 6.12 headers), each contender in its own scratch root with the
   packages added and nothing built:
     * ours: `dkms mkbmdeb m/v -k K1 -k K2 -k K3` for each package (builds first, then the
       nine .deb files);
     * ours: `dkms autoinstall --all-kernels` (the same builds, installed instead);
     * Debian's bash dkms: `dkms autoinstall -k K` for each kernel (it has no mkbmdeb any
       more: 3.0 removed it; its autoinstall is the nearest work it can do).
2. A fleet host: an overlay of this machine's root in a private mount namespace, with no
   compiler, make or kernel headers, and an apt repository (apt-ftparchive) holding the
   acpi-call package for the 6.1 kernel: the wall time of `apt-get install` of it, and of
   `apt-get remove --purge` (each runs depmod of the whole kernel, as Debian's own module
   packages do). Target: install under 1 s.
Usage: bench/packages.py  (root; the packages from .ci/install-deps)
"""
import importlib.util, os, shutil, subprocess, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = REPO / "target/release/dkms"
spec = importlib.util.spec_from_file_location("ai", REPO / "bench/autoinstall.py")
ai = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ai)
ai.PACKAGES = ["acpi-call-dkms", "bbswitch-dkms", "v4l2loopback-dkms"]

def ours(srcs, ks, how):
    """Wall time of ours in a fresh root: mkbmdeb of every package, or autoinstall."""
    root = ai.scratch(srcs, ks)
    env = dict(os.environ, DKMS_SYSROOT=str(root))
    for _, mv in srcs:
        subprocess.run([str(OURS), "add", mv, "-k", ks[0]], env=env, capture_output=True, check=True)
    made = []
    start = time.perf_counter()
    if how == "mkbmdeb":
        for _, mv in srcs:
            kargs = [a for k in ks for a in ("-k", k)]
            r = subprocess.run([str(OURS), "mkbmdeb", mv] + kargs, env=env, capture_output=True, text=True)
            made += [l for l in r.stdout.splitlines() if l.endswith(".deb")]
    else:
        subprocess.run([str(OURS), "autoinstall", "--all-kernels"], env=env, capture_output=True)
    wall = time.perf_counter() - start
    return wall, root, made

FLEET = r'''
set -e
. tests/e2e/lib.sh
mount --make-rprivate /
host=$(overlay_root host)
for d in "$host"/usr/lib/modules/*; do [ "${d##*/}" = "$KERNEL" ] || rm -rf "$d"; done
rm -rf "$host/usr/lib/modules/$KERNEL/build" "$host"/usr/src/linux-headers-*
rm -f "$host"/usr/bin/gcc* "$host"/usr/bin/cc "$host"/usr/bin/make "$host"/usr/bin/x86_64-linux-gnu-gcc*
! chroot "$host" sh -c 'command -v gcc || command -v cc || command -v make' >/dev/null
mkdir -p "$host/srv/fleet" && cp "$DEB" "$host/srv/fleet/"
(cd "$host/srv/fleet" && apt-ftparchive packages . > Packages && apt-ftparchive release . > Release)
rm -f "$host"/etc/apt/sources.list "$host"/etc/apt/sources.list.d/*
echo "deb [trusted=yes] file:/srv/fleet ./" > "$host/etc/apt/sources.list.d/fleet.list"
chroot "$host" apt-get update -qq >/dev/null
t0=$(date +%s.%N)
chroot "$host" apt-get install -y -qq "$PKG" >/dev/null
t1=$(date +%s.%N)
test -n "$(modinfo -F signer "$host/lib/modules/$KERNEL/updates/dkms/acpi_call.ko")"
chroot "$host" apt-get remove --purge -y -qq "$PKG" >/dev/null
t2=$(date +%s.%N)
echo "$t0 $t1 $t2"
'''

def fleet(deb, kernel):
    work = Path(tempfile.mkdtemp(prefix="dkms-bench-fleet-"))
    pkg = Path(deb).name.split("_")[0]
    env = dict(os.environ, work=str(work), KERNEL=kernel, DEB=deb, PKG=pkg)
    r = subprocess.run(["unshare", "-m", "bash", "-c", FLEET], cwd=REPO, env=env, capture_output=True, text=True)
    shutil.rmtree(work, ignore_errors=True)
    if r.returncode != 0:
        raise SystemExit(f"fleet host failed:\n{r.stdout}{r.stderr}")
    t0, t1, t2 = map(float, r.stdout.split())
    return t1 - t0, t2 - t1

def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    ks = ai.kernels()
    tmp = Path(tempfile.mkdtemp(prefix="dkms-bench-src-"))
    srcs = ai.sources(tmp)
    print(f"{len(srcs)} packages x {len(ks)} kernels ({', '.join(ks)}), {os.cpu_count()} cores")
    mk, mk_root, debs = ours(srcs, ks, "mkbmdeb")
    auto, auto_root, _ = ours(srcs, ks, "autoinstall")
    shutil.rmtree(auto_root)
    bash, _ = ai.run_bash(srcs, ks, depmod=True)
    acpi = next(d for d in debs if Path(d).name.startswith(f"acpi-call-modules-{ks[0]}_"))
    install, remove = fleet(acpi, ks[0])
    shutil.rmtree(mk_root)
    shutil.rmtree(tmp)
    print(f"| {'run':<58} | {'wall':>8} |")
    print(f"|{'-'*60}|{'-'*10}|")
    print(f"| {'ours: mkbmdeb, ' + str(len(debs)) + ' packages (builds included)':<58} | {mk:>6.1f} s |")
    print(f"| {'ours: autoinstall --all-kernels (same builds, installed)':<58} | {auto:>6.1f} s |")
    print(f"| {'bash dkms: autoinstall -k, each kernel (no mkbmdeb)':<58} | {bash:>6.1f} s |")
    print(f"| {'fleet host, no compiler: apt-get install of ' + Path(acpi).name.split('_')[0]:<58} | {install:>6.2f} s |")
    print(f"| {'fleet host: apt-get remove --purge of it':<58} | {remove:>6.2f} s |")
    print(f"fleet install: {install:.2f} s (target < 1 s: {'met' if install < 1 else 'NOT met'})")

if __name__ == "__main__":
    main()
