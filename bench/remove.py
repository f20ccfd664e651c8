#!/usr/bin/env python3
"""Benchmark `dkms remove --all` of one package with many modules (upstream's report:
617 modules took the bash dkms 40 minutes). The tree is laid out as both dkms leave it:
N real module files (copies of one real .ko, so modinfo works), built and installed for
one kernel. Prints ours and Debian's bash dkms (capped), and ours for N/2 and N, to show
the time is linear. Usage: bench/remove.py [N] (default 617).
"""
import os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = REPO / "target/release/dkms"
K = "6.1.0-99-bench"

def real_ko():
    for p in Path("/lib/modules").rglob("*.ko*"):
        data = subprocess.run(["xz", "-dc", str(p)], capture_output=True).stdout if p.name.endswith(".xz") else p.read_bytes()
        return data
    raise SystemExit("no kernel module found under /lib/modules")

def tree(n, ko):
    root = Path(tempfile.mkdtemp(prefix="dkms-bench-rm-"))
    (root / "etc").mkdir()
    shutil.copy("/etc/os-release", root / "etc/os-release")
    src = root / "usr/src/many-1.0"
    src.mkdir(parents=True)
    conf = ['PACKAGE_NAME="many"', 'PACKAGE_VERSION="1.0"']
    for i in range(n):
        conf += [f'BUILT_MODULE_NAME[{i}]="m{i:04d}"', f'DEST_MODULE_LOCATION[{i}]="/updates/dkms"']
    (src / "dkms.conf").write_text("\n".join(conf) + "\n")
    (src / "m.c").write_text("")
    v = root / "var/lib/dkms/many/1.0"
    (v / "build").mkdir(parents=True)
    os.symlink(src, v / "source")
    mod = v / K / "x86_64/module"
    mod.mkdir(parents=True)
    (v / K / "x86_64/log").mkdir()
    inst = root / f"lib/modules/{K}/updates/dkms"
    inst.mkdir(parents=True)
    (root / f"lib/modules/{K}/build/include").mkdir(parents=True)
    for i in range(n):
        (mod / f"m{i:04d}.ko").write_bytes(ko)
        (inst / f"m{i:04d}.ko").write_bytes(ko)
    os.symlink(f"1.0/{K}/x86_64", root / f"var/lib/dkms/many/kernel-{K}-x86_64")
    return root

def run(cmd, env, cap):
    start = time.perf_counter()
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return None, None
    return time.perf_counter() - start, r

def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 617
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    ko = real_ko()
    print(f"dkms remove --all of one package of N modules installed on one kernel ({len(ko)//1024} KiB each)")
    for count in (n // 2, n):
        root = tree(count, ko)
        t, r = run([str(OURS), "remove", "many/1.0", "--all"], dict(os.environ, DKMS_SYSROOT=str(root)), 600)
        assert r.returncode == 0, r.stderr
        left = list((root / f"lib/modules/{K}").rglob("*.ko"))
        print(f"  ours, N={count:<4}       {t:8.2f} s   files left: {len(left)}")
        shutil.rmtree(root)
    root = tree(n, ko)
    trees = ["--dkmstree", f"{root}/var/lib/dkms", "--sourcetree", f"{root}/usr/src", "--installtree", f"{root}/lib/modules"]
    cap = 600
    t, r = run(["/usr/sbin/dkms", "remove", "many/1.0", "--all", "--no-depmod"] + trees, dict(os.environ), cap)
    if t is None:
        print(f"  bash dkms, N={n:<4}  > {cap} s (stopped)")
    else:
        left = list((root / f"lib/modules/{K}").rglob("*.ko"))
        print(f"  bash dkms, N={n:<4}  {t:8.2f} s   files left: {len(left)}   (exit {r.returncode})")
    shutil.rmtree(root)

if __name__ == "__main__":
    main()
