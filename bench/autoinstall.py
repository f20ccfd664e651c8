#!/usr/bin/env python3
"""Benchmark autoinstall of six real Debian *-dkms packages on three kernels.

Each contender gets its own scratch root with the same packages added (AUTOINSTALL=yes)
and the same three kernels: their headers, and (hard links to) their installed modules
trees and System.map, as on a real machine, so that depmod has its real work:
  * raw make: every (module, kernel)'s own make command (MAKE from its dkms.conf, as dkms
    runs it, -j1), one after the other: the CPU seconds any dkms must spend; the ideal
    wall time on C cores is CPU / C;
  * ours: `dkms autoinstall --all-kernels` (parallel, one shared jobserver, one depmod
    per kernel);
  * Debian's bash dkms: `dkms autoinstall -k K` for each kernel (one module after the
    other, each with make -jC, each install followed by a depmod of the kernel).
Both run twice: "builds only" (--no-depmod) and "whole autoinstall" (depmod as each tool
does it). Debian's dkms 3.0.10 always runs depmod on the real /lib/modules/<k> (not the
scratch tree); the trees have the same modules, so the work is the same.
Targets: builds only, ours <= 1.1 x (raw make CPU / cores); whole autoinstall, ours >= 1.8x
faster than bash dkms. Some packages do not build on 6.12 (same exit code with both dkms):
that work counts too. The three kernels need their linux-image installed for a realistic
depmod (the script says which one is missing).
Usage: bench/autoinstall.py  (DKMS_BIN=FILE times another build of ours)
"""
import os, resource, shutil, subprocess, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = Path(os.environ.get("DKMS_BIN", REPO / "target/release/dkms"))
DEBS = Path("/var/cache/dkms-rs-test/debs")
PACKAGES = ["acpi-call-dkms", "bbswitch-dkms", "v4l2loopback-dkms", "r8168-dkms", "xtables-addons-dkms", "dm-writeboost-dkms"]

def kernels():
    out = []
    for pred in (lambda k: k.startswith("6.1.") and k.endswith("-amd64") and "cloud" not in k,
                 lambda k: k.startswith("6.1.") and k.endswith("-cloud-amd64"),
                 lambda k: k.startswith("6.12.") and k.endswith("+deb12-amd64")):
        ks = sorted(p.name[len("linux-headers-"):] for p in Path("/usr/src").glob("linux-headers-*") if pred(p.name[len("linux-headers-"):]))
        out.append(ks[-1])
    return out

def sources(tmp):
    """(dir, module/version) of each package's source, extracted once."""
    out = []
    for pkg in PACKAGES:
        deb = next(DEBS.glob(f"{pkg}_*.deb"))
        dest = tmp / pkg
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
        src = next(p.parent for p in (dest / "usr/src").glob("*/dkms.conf"))
        mv = subprocess.run(["bash", "-c", '. ./dkms.conf >/dev/null 2>&1; echo "$PACKAGE_NAME/$PACKAGE_VERSION"'],
                            cwd=src, capture_output=True, text=True).stdout.strip()
        conf = src / "dkms.conf"
        text = conf.read_text()
        if "AUTOINSTALL" not in text:
            conf.write_text(text + "\nAUTOINSTALL=yes\n")
        out.append((src, mv))
    return out

def scratch(srcs, ks):
    root = Path(tempfile.mkdtemp(prefix="dkms-bench-ai-"))
    for d in ["etc/dkms", "var/lib/dkms", "usr/src"]:
        (root / d).mkdir(parents=True)
    shutil.copy("/etc/os-release", root / "etc/os-release")
    (root / "boot").mkdir()
    for k in ks:
        lib = root / f"lib/modules/{k}"
        lib.mkdir(parents=True)
        os.symlink(f"/usr/src/linux-headers-{k}", lib / "build")
        real = Path(f"/lib/modules/{k}")
        if (real / "kernel").is_dir():
            subprocess.run(["cp", "-al", str(real / "kernel"), str(lib)], check=True)
            for f in real.glob("modules.*"):
                shutil.copy(f, lib / f.name)
        if Path(f"/boot/System.map-{k}").exists():
            os.symlink(f"/boot/System.map-{k}", root / f"boot/System.map-{k}")
    for src, _ in srcs:
        shutil.copytree(src, root / "usr/src" / src.name, symlinks=True)
    return root

def run_ours(srcs, ks, depmod):
    """Wall and CPU time of our autoinstall, the status after it, and its summary lines."""
    root = scratch(srcs, ks)
    env = dict(os.environ, DKMS_SYSROOT=str(root))
    for _, mv in srcs:
        subprocess.run([str(OURS), "add", mv, "-k", ks[0]], env=env, capture_output=True, check=True)
    start, cpu0 = time.perf_counter(), children_cpu()
    r = subprocess.run([str(OURS), "autoinstall", "--all-kernels"] + ([] if depmod else ["--no-depmod"]),
                       env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu0
    status = subprocess.run([str(OURS), "status"], env=env, capture_output=True, text=True).stdout
    summary = [l for l in r.stdout.splitlines() if l.startswith("Autoinstall on")]
    shutil.rmtree(root)
    return wall, cpu, status, summary

def run_bash(srcs, ks, depmod):
    """Wall time of Debian's bash dkms autoinstall on each kernel, and the status after."""
    root = scratch(srcs, ks)
    trees = ["--dkmstree", f"{root}/var/lib/dkms", "--sourcetree", f"{root}/usr/src", "--installtree", f"{root}/lib/modules"]
    env = dict(os.environ, mok_signing_key=f"{root}/mok.key", mok_certificate=f"{root}/mok.pub")
    for _, mv in srcs:
        subprocess.run(["/usr/sbin/dkms", "add", mv] + trees, env=env, capture_output=True)
    start = time.perf_counter()
    for k in ks:
        subprocess.run(["/usr/sbin/dkms", "autoinstall", "-k", k] + trees + ([] if depmod else ["--no-depmod"]),
                       env=env, capture_output=True)
    wall = time.perf_counter() - start
    status = subprocess.run(["/usr/sbin/dkms", "status"] + trees, capture_output=True, text=True).stdout
    shutil.rmtree(root)
    return wall, status

def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    cores = os.cpu_count()
    ks = kernels()
    tmp = Path(tempfile.mkdtemp(prefix="dkms-bench-src-"))
    srcs = sources(tmp)
    print(f"autoinstall of {len(srcs)} packages on {len(ks)} kernels ({', '.join(ks)}), {cores} cores")
    for k in ks:
        if not Path(f"/lib/modules/{k}/kernel").is_dir():
            print(f"note: {k} has no modules tree, so depmod has little to do: apt-get install linux-image-{k}")

    # Raw make, serial, CPU seconds: each package's own make command (MAKE[0] evaluated
    # by bash with the kernel in scope, the original's `make` -> `make -jN KERNELRELEASE=k`
    # rewrite with -j1), run in a copy of the source at the build path dkms uses.
    cpu0, wall0 = children_cpu(), time.perf_counter()
    for src, mv in srcs:
        m, v = mv.split("/", 1)
        for k in ks:
            tree = Path(tempfile.mkdtemp(prefix="dkms-bench-make-"))
            build = tree / m / v / "build"
            shutil.copytree(src, build, symlinks=True)
            ksrc = f"/lib/modules/{k}/build"
            make = subprocess.run(["bash", "-c", f'kernelver={k}; arch=x86_64; kernel_source_dir={ksrc}; dkms_tree={tree}; '
                                   f'module={m}; module_version={v}; parallel_jobs=1; . ./dkms.conf >/dev/null 2>&1; echo "${{MAKE[0]}}"'],
                                  cwd=build, capture_output=True, text=True).stdout.strip()
            if not make:
                make = f"make -C {ksrc} M={build}"
            if make.startswith("make"):
                make = f"make -j1 KERNELRELEASE={k}" + make[len("make"):]
            subprocess.run(["bash", "-c", make], cwd=build, capture_output=True)
            shutil.rmtree(tree)
    raw_cpu, raw_wall = children_cpu() - cpu0, time.perf_counter() - wall0
    # depmod, once per kernel, CPU seconds: what any dkms must add to the builds.
    root = scratch([], ks)
    cpu0 = children_cpu()
    for k in ks:
        system_map = Path(f"/boot/System.map-{k}")
        symbols = ["-F", str(system_map)] if system_map.exists() else []
        subprocess.run(["depmod", "-b", str(root), "-a"] + symbols + [k], check=True)
    depmod_cpu = children_cpu() - cpu0
    shutil.rmtree(root)

    ours_builds, ours_builds_cpu, _, _ = run_ours(srcs, ks, depmod=False)
    bash_builds, _ = run_bash(srcs, ks, depmod=False)
    ours, ours_cpu, ours_status, summary = run_ours(srcs, ks, depmod=True)
    bash, bash_status = run_bash(srcs, ks, depmod=True)
    shutil.rmtree(tmp)

    ideal = raw_cpu / cores
    print(f"| {'run':<40} | {'builds only':>11} | {'whole autoinstall':>17} |")
    print(f"|{'-'*42}|{'-'*13}|{'-'*19}|")
    whole = (raw_cpu + depmod_cpu) / cores
    print(f"| {'raw make (+ 1 depmod per kernel), CPU':<40} | {raw_cpu:>9.1f} s | {raw_cpu + depmod_cpu:>15.1f} s |")
    print(f"| {'ideal on ' + str(cores) + ' cores (CPU / cores)':<40} | {ideal:>9.1f} s | {whole:>15.1f} s |")
    print(f"| {'ours: autoinstall --all-kernels':<40} | {ours_builds:>9.1f} s | {ours:>15.1f} s |")
    print(f"| {'ours: CPU (all its processes)':<40} | {ours_builds_cpu:>9.1f} s | {ours_cpu:>15.1f} s |")
    print(f"| {'bash dkms: autoinstall -k, each kernel':<40} | {bash_builds:>9.1f} s | {bash:>15.1f} s |")
    print(f"| {'bash dkms / ours':<40} | {bash_builds / ours_builds:>10.2f}x | {bash / ours:>16.2f}x |")
    print(f"builds only: ours / ideal = {ours_builds / ideal:.2f} (target <= 1.10); whole: ours / ideal = {ours / whole:.2f}")
    print(f"ours: wall / (own CPU / cores) = {ours_builds / (ours_builds_cpu / cores):.2f} builds only, "
          f"{ours / (ours_cpu / cores):.2f} whole (1.00 = both cores busy all the time)")
    print(f"whole autoinstall: bash dkms / ours = {bash / ours:.2f}x (target >= 1.8); "
          f"bash dkms / ideal = {bash / whole:.2f}x, the most any dkms can gain on this work")
    ours_installed = sum(1 for l in ours_status.splitlines() if l.endswith("installed"))
    bash_installed = sum(1 for l in bash_status.splitlines() if l.endswith("installed"))
    print(f"installed (module, kernel) pairs: ours {ours_installed}, bash dkms {bash_installed}")
    for l in summary:
        print("  " + l)

if __name__ == "__main__":
    main()
