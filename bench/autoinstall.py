#!/usr/bin/env python3
"""Benchmark autoinstall of six real Debian *-dkms packages on three kernels.

Each contender gets its own scratch root with the same packages added (AUTOINSTALL=yes)
and the same three kernels' headers:
  * raw make: every (module, kernel)'s own make command (MAKE from its dkms.conf, as dkms
    runs it, -j1), one after the other: the CPU seconds any dkms must spend; the ideal
    wall time on C cores is CPU / C;
  * ours: `dkms autoinstall --all-kernels` (parallel, one shared jobserver);
  * Debian's bash dkms: `dkms autoinstall -k K` for each kernel.
Targets: ours <= 1.1 x (raw make CPU / cores); ours >= 1.8x faster than bash dkms.
Some packages do not build on 6.12 (same exit code with both dkms): that work counts too.
Usage: bench/autoinstall.py
"""
import os, resource, shutil, subprocess, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = REPO / "target/release/dkms"
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
    for k in ks:
        (root / f"lib/modules/{k}").mkdir(parents=True)
        os.symlink(f"/usr/src/linux-headers-{k}", root / f"lib/modules/{k}/build")
    for src, _ in srcs:
        shutil.copytree(src, root / "usr/src" / src.name, symlinks=True)
    return root

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

    # Ours.
    root = scratch(srcs, ks)
    env = dict(os.environ, DKMS_SYSROOT=str(root))
    for _, mv in srcs:
        subprocess.run([str(OURS), "add", mv, "-k", ks[0]], env=env, capture_output=True, check=True)
    start = time.perf_counter()
    r = subprocess.run([str(OURS), "autoinstall", "--all-kernels"], env=env, capture_output=True, text=True)
    ours = time.perf_counter() - start
    ours_status = subprocess.run([str(OURS), "status"], env=env, capture_output=True, text=True).stdout
    summary = [l for l in r.stdout.splitlines() if l.startswith("Autoinstall on")]
    shutil.rmtree(root)

    # Debian's bash dkms.
    root = scratch(srcs, ks)
    trees = ["--dkmstree", f"{root}/var/lib/dkms", "--sourcetree", f"{root}/usr/src", "--installtree", f"{root}/lib/modules"]
    env = dict(os.environ, mok_signing_key=f"{root}/mok.key", mok_certificate=f"{root}/mok.pub")
    for _, mv in srcs:
        subprocess.run(["/usr/sbin/dkms", "add", mv] + trees, env=env, capture_output=True)
    start = time.perf_counter()
    for k in ks:
        subprocess.run(["/usr/sbin/dkms", "autoinstall", "-k", k, "--no-depmod"] + trees, env=env, capture_output=True)
    bash = time.perf_counter() - start
    bash_status = subprocess.run(["/usr/sbin/dkms", "status"] + trees, capture_output=True, text=True).stdout
    shutil.rmtree(root)
    shutil.rmtree(tmp)

    ideal = raw_cpu / cores
    print(f"| {'run':<32} | {'wall':>9} |")
    print(f"|{'-'*34}|{'-'*11}|")
    print(f"| {'raw make, serial (CPU s)':<32} | {raw_cpu:>7.1f} s |")
    print(f"| {'ideal on ' + str(cores) + ' cores (CPU / cores)':<32} | {ideal:>7.1f} s |")
    print(f"| {'ours: autoinstall --all-kernels':<32} | {ours:>7.1f} s |")
    print(f"| {'bash dkms: autoinstall per kernel':<32} | {bash:>7.1f} s |")
    print(f"ours / ideal = {ours / ideal:.2f} (target <= 1.10);  bash / ours = {bash / ours:.2f}x (target >= 1.8)")
    ours_installed = sum(1 for l in ours_status.splitlines() if l.endswith("installed"))
    bash_installed = sum(1 for l in bash_status.splitlines() if l.endswith("installed"))
    print(f"installed (module, kernel) pairs: ours {ours_installed}, bash dkms {bash_installed}")
    for l in summary:
        print("  " + l)

if __name__ == "__main__":
    main()
