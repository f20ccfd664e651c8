#!/usr/bin/env python3
"""Benchmark a kernel upgrade with four real Debian *-dkms packages: dkms preflight
before the kernel lands, then the kernel's postinst (autoinstall), against the postinst
alone, ours and Debian's bash dkms, on the same work.

Each contender gets a scratch root with the packages added (AUTOINSTALL=yes) and
installed on the 6.1 kernel; then the 6.12 kernel arrives: its headers, and (hard links
to) its modules tree and System.map when the machine has its image, so that depmod has
its real work. Timed:
  * ours with preflight: `dkms preflight --headers /usr/src/linux-headers-<6.12>` while
    the root has no 6.12 yet; then, once it has, `dkms kernel_postinst -k <6.12>`;
  * ours alone: `dkms kernel_postinst -k <6.12>` (it compiles);
  * Debian's bash dkms: `dkms autoinstall -k <6.12>` (what its kernel hook runs).
The postinst is also timed with --no-depmod, to show depmod's share (a kernel's depmod is
the kernel's cost, not the modules'). Target: after a preflight, the time the postinst
spends in dkms is under 1 s for the four modules (nothing compiled).
Usage: bench/preflight.py
"""
import importlib.util, os, shutil, subprocess, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("autoinstall_bench", HERE / "autoinstall.py")
ai = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ai)
ai.PACKAGES = ["acpi-call-dkms", "bbswitch-dkms", "r8168-dkms", "xtables-addons-dkms"]
OURS = ai.OURS
TREES = lambda root: ["--dkmstree", f"{root}/var/lib/dkms", "--sourcetree", f"{root}/usr/src", "--installtree", f"{root}/lib/modules"]

def timed(cmd, env=None):
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, out

def ours(root, *args):
    env = dict(os.environ, DKMS_SYSROOT=str(root))
    return timed([str(OURS), *args], env)

def arrive(root, k):
    """The kernel's installation: its modules tree and System.map (headers: the build link)."""
    lib = root / f"lib/modules/{k}"
    lib.mkdir(parents=True, exist_ok=True)
    if not (lib / "build").exists():
        os.symlink(f"/usr/src/linux-headers-{k}", lib / "build")
    real = Path(f"/lib/modules/{k}")
    if (real / "kernel").is_dir() and not (lib / "kernel").exists():
        subprocess.run(["cp", "-al", str(real / "kernel"), str(lib)], check=True)
        for f in real.glob("modules.*"):
            shutil.copy(f, lib / f.name)
    if Path(f"/boot/System.map-{k}").exists() and not (root / f"boot/System.map-{k}").exists():
        os.symlink(f"/boot/System.map-{k}", root / f"boot/System.map-{k}")

def prepared(srcs, old, new):
    """A root with the packages added and installed on `old`; `new` not there yet."""
    root = ai.scratch(srcs, [old])
    for _, mv in srcs:
        ours(root, "install", mv, "-k", old)
    return root

def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ai.REPO, check=True)
    old, _, new = ai.kernels()
    tmp = Path(ai.tempfile.mkdtemp(prefix="dkms-bench-pf-"))
    roots = []
    try:
        srcs = ai.sources(tmp)
        # Ours, with preflight.
        root = prepared(srcs, old, new); roots.append(root)
        pre, out = ours(root, "preflight", "--headers", f"/usr/src/linux-headers-{new}")
        table = out.stdout[out.stdout.find("module/version"):]
        arrive(root, new)
        post, out = ours(root, "kernel_postinst", "-k", new)
        built_by_postinst = out.stdout.count("Building ")
        # The same again without depmod (a fresh root, preflight first).
        root2 = prepared(srcs, old, new); roots.append(root2)
        ours(root2, "preflight", "--headers", f"/usr/src/linux-headers-{new}")
        arrive(root2, new)
        post_nodep, _ = ours(root2, "kernel_postinst", "-k", new, "--no-depmod")
        # Ours alone.
        root3 = prepared(srcs, old, new); roots.append(root3)
        arrive(root3, new)
        alone, _ = ours(root3, "kernel_postinst", "-k", new)
        # Debian's bash dkms.
        root4 = ai.scratch(srcs, [old]); roots.append(root4)
        for _, mv in srcs:
            subprocess.run(["/usr/sbin/dkms", "add", mv, *TREES(root4)], capture_output=True)
        arrive(root4, new)
        bash, _ = timed(["/usr/sbin/dkms", "autoinstall", "-k", new, *TREES(root4)],
                        dict(os.environ, mok_signing_key=str(root4 / "mok.key"), mok_certificate=str(root4 / "mok.pub")))
        print(f"kernel upgrade {old} -> {new}, {len(srcs)} packages: {', '.join(mv for _, mv in srcs)}")
        print(table.rstrip())
        print()
        print(f"| {'step':<44} | {'seconds':>8} |")
        print(f"|{'-'*46}|{'-'*10}|")
        print(f"| {'ours: preflight (before the kernel lands)':<44} | {pre:>8.2f} |")
        print(f"| {'ours: kernel postinst after preflight':<44} | {post:>8.2f} |")
        print(f"| {'  the same, --no-depmod':<44} | {post_nodep:>8.2f} |")
        print(f"| {'ours: kernel postinst alone':<44} | {alone:>8.2f} |")
        print(f"| {'Debian bash dkms: autoinstall':<44} | {bash:>8.2f} |")
        print(f"builds in the postinst after preflight: {built_by_postinst}")
        print(f"target (postinst after preflight under 1 s): {'met' if post < 1 else 'NOT met'}"
              f" ({post:.2f} s; without depmod {post_nodep:.2f} s: {'met' if post_nodep < 1 else 'NOT met'})")
    finally:
        for r in roots:
            shutil.rmtree(r, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    main()
