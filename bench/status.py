#!/usr/bin/env python3
"""Benchmark `dkms status`: ours against Debian's bash dkms on the same scratch tree.

30 modules x 3 kernels: 10 installed everywhere (5 of them with archived original
modules), 10 built but not installed, 10 only added. dkms.conf files are real ones from
the corpus (tests/fixtures/dkms-conf), so some need bash even for us. Prints a table with
the median of N runs and our max RSS. Our first run is shown apart: it evaluates the
dkms.conf files that need bash and caches them for later runs (src/conf/cache.rs). Our
`status --json` (which also reads every module's signature) is timed beside it: its
target is within 2x of the plain status. Usage: bench/status.py [runs] [--plain]
[--modules N] [--ours-only] (default 10 runs, 30 modules; a third installed, a third
built, a third added; --ours-only skips Debian's dkms, which takes minutes on thousands).
"""
import os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = Path(os.environ.get("DKMS_BIN", REPO / "target/release/dkms"))
BASH = Path("/usr/sbin/dkms")
# Kernel names that exist nowhere on the machine: Debian's dkms 3.0.10 reads
# /lib/modules/<k>/build (not --installtree), so a real kernel's config would reach
# only its evaluation of confs that source the kernel config (lttng-modules).
KERNELS = ["6.1.0-99-bench", "6.12.999+deb12-bench", "6.12.999+deb12-cloud-bench"]
CORPUS = sorted((REPO / "tests/fixtures/dkms-conf").glob("*.conf"))

PLAIN = "--plain" in sys.argv
OURS_ONLY = "--ours-only" in sys.argv
MODULES = int(sys.argv[sys.argv.index("--modules") + 1]) if "--modules" in sys.argv else 30

def conf_for(i, name, version):
    """A real corpus file with its package name/version replaced, module arrays kept
    (with --plain: a plain-assignment conf, which never needs bash)."""
    if PLAIN:
        return (f'PACKAGE_NAME="{name}"\nPACKAGE_VERSION="{version}"\nBUILT_MODULE_NAME[0]="{name}"\n'
                f'MAKE[0]="make -C $kernel_source_dir M=$dkms_tree/$module/$module_version/build"\n'
                f'DEST_MODULE_LOCATION[0]="/updates/dkms"\nAUTOINSTALL="yes"\n')
    text = CORPUS[i % len(CORPUS)].read_text()
    lines = [l for l in text.splitlines() if not l.startswith(("PACKAGE_NAME=", "PACKAGE_VERSION="))]
    return f'PACKAGE_NAME="{name}"\nPACKAGE_VERSION="{version}"\n' + "\n".join(lines) + "\n"

def dest_names(conf_path, name, version, root, kernel):
    """Ask our own evaluator which module files the conf declares (via --json of a probe)."""
    out = subprocess.run(["bash", "-c", f'''
        kernelver={kernel}; arch=x86_64; kernel_source_dir={root}/lib/modules/{kernel}/build
        dkms_tree={root}/var/lib/dkms; module={name}; module_version={version}; parallel_jobs=2
        . {conf_path} >/dev/null 2>&1
        for i in "${{!BUILT_MODULE_NAME[@]}}" "${{!DEST_MODULE_LOCATION[@]}}"; do
          n="${{DEST_MODULE_NAME[$i]:-${{BUILT_MODULE_NAME[$i]:-$PACKAGE_NAME}}}}"; echo "$n"; done | sort -u'''],
        capture_output=True, text=True)
    return [n for n in out.stdout.split() if n] or [name]

def make_tree(root):
    for k in KERNELS:
        (root / f"lib/modules/{k}/build/include").mkdir(parents=True)
    for i in range(MODULES):
        name, version = f"bench{i:02d}", f"1.{i}"
        src = root / f"usr/src/{name}-{version}"
        src.mkdir(parents=True)
        (src / "dkms.conf").write_text(conf_for(i, name, version))
        vdir = root / f"var/lib/dkms/{name}/{version}"
        (vdir / "build").mkdir(parents=True)
        os.symlink(src, vdir / "source")
        if i >= 2 * MODULES // 3:
            continue  # added only
        for k in KERNELS:
            mdir = vdir / k / "x86_64" / "module"
            mdir.mkdir(parents=True)
            (vdir / k / "x86_64/log").mkdir()
            for n in dest_names(src / "dkms.conf", name, version, root, k):
                data = os.urandom(200_000)
                (mdir / f"{n}.ko").write_bytes(data)
                if i < MODULES // 3:
                    dest = root / f"lib/modules/{k}/updates/dkms"
                    dest.mkdir(parents=True, exist_ok=True)
                    (dest / f"{n}.ko").write_bytes(data)
            if i < MODULES // 3:
                os.symlink(f"{version}/{k}/x86_64", root / f"var/lib/dkms/{name}/kernel-{k}-x86_64")
                if i < MODULES // 6:
                    o = root / f"var/lib/dkms/{name}/original_module/{k}/x86_64"
                    o.mkdir(parents=True)
                    (o / f"{name}.ko").write_bytes(b"orig")

def timed(cmd, env):
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, out

def max_rss_kib(cmd, env):
    """Peak RSS of one run of cmd alone (wait4 gives that child's own rusage)."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(p.pid, 0)
    return usage.ru_maxrss

def main():
    args = [a for a in sys.argv[1:] if a not in ("--plain", "--ours-only")]
    if "--modules" in args:
        del args[args.index("--modules"):args.index("--modules") + 2]
    runs = int(args[0]) if args else 10
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    root = Path(tempfile.mkdtemp(prefix="dkms-bench-"))
    try:
        make_tree(root)
        trees = ["--dkmstree", f"{root}/var/lib/dkms", "--sourcetree", f"{root}/usr/src", "--installtree", f"{root}/lib/modules"]
        env = dict(os.environ)
        ours_cmd = [str(OURS), "status"] + trees
        bash_cmd = [str(BASH), "status"] + trees
        cold, o = timed(ours_cmd, env)  # first run: evaluates bash-needing confs, fills the cache
        _, b = timed(bash_cmd, env) if not OURS_ONLY else (0, o)
        lines = len(o.stdout.splitlines())
        ours_times = [timed(ours_cmd, env)[0] for _ in range(runs)]
        json_times = [timed(ours_cmd + ["--json"], env)[0] for _ in range(runs)]
        mj = statistics.median(json_times)
        rss_kib = max_rss_kib(ours_cmd, env)
        bash_times = [timed(bash_cmd, env)[0] for _ in range(runs)] if not OURS_ONLY else [float("nan")]
        mo, mb = statistics.median(ours_times), statistics.median(bash_times)
        def old_words(s):
            return (s.replace("(Original modules exist)", "(original_module exists)")
                     .replace("(Built modules are missing in the kernel modules folder)", "(WARNING! Missing some built modules!)")
                     .replace("(Differences between built and installed modules)", "(WARNING! Diff between built and installed module!)"))
        same = OURS_ONLY or old_words(o.stdout) == b.stdout
        kind = "plain-assignment dkms.conf files" if PLAIN else "real corpus dkms.conf files"
        print(f"dkms status on {MODULES} modules x 3 kernels ({lines} lines, {kind}), median of {runs} runs")
        print(f"| {'implementation':<22} | {'median':>10} | {'max RSS':>9} |")
        print(f"|{'-'*24}|{'-'*12}|{'-'*11}|")
        print(f"| {'ours (Rust)':<22} | {mo*1000:>7.2f} ms | {rss_kib/1024:>5.1f} MiB |")
        print(f"| {'ours, first run (cold)':<22} | {cold*1000:>7.2f} ms | {'':>9} |")
        print(f"| {'ours, status --json':<22} | {mj*1000:>7.2f} ms | {'':>9} |")
        print(f"| {'Debian bash dkms 3.0.10':<22} | {mb*1000:>7.1f} ms | {'':>9} |")
        print(f"speedup: {mb/mo:.0f}x   same lines as bash (3.0.10 wording): {'yes' if same else 'NO'}")
        print(f"targets: >=100x faster: {'met' if mb/mo >= 100 else 'MISSED'}; under 10 ms: {'met' if mo < 0.010 else 'MISSED'}; "
              f"--json within 2x of plain: {'met' if mj <= 2 * mo else 'MISSED'} ({mj/mo:.2f}x)")
        if not same:
            sys.stdout.write("--- ours\n" + o.stdout + "--- bash\n" + b.stdout)
    finally:
        shutil.rmtree(root)

if __name__ == "__main__":
    main()
