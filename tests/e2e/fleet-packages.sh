#!/bin/bash
# Prebuilt module packages for a fleet, end to end: a build host compiles once with
# `dkms mkbmdeb` / `dkms mkbmpkg`; fleet hosts with no compiler and no kernel headers
# install the packages from a real repository (apt-ftparchive for apt, repo-add for
# pacman) with `apt-get install` / `pacman -S`, and remove them again.
#
# Where it runs: every host is a throwaway root, an overlay of this machine's root with a
# tmpfs on top, in one private mount namespace (nothing reaches the machine):
#   build      the machine's toolchain and kernel headers; our dkms builds and packages;
#   apt-host   Debian with only the 6.1 kernel image: compilers, make, kernel headers and
#              the other kernel images taken out; apt sees only the fleet repository;
#   pacman-host the same, with pacman's own database, where the kernel comes from a pacman
#              package (Debian's cloud kernel repackaged by tests/e2e/arch/linux-cloud).
# Commands run chrooted into their host; our dkms is the release binary, copied in.
# Prints 'N passed, N failed'.
set -u -o pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

if [[ $(id -u) != 0 ]] || ! has_commands makepkg pacman repo-add apt-ftparchive; then
    echo "fleet-packages.sh: needs root, makepkg, pacman and apt-ftparchive (see .ci/install-deps)" >&2
    exit 2
fi
cargo build --release --quiet || exit 2
kernel=$(newest_headers '6.1.*-amd64' -v cloud rt)
other=$(newest_headers '6.12.*-amd64')
cloud=$(newest_headers '6.1.*-cloud-amd64')
cloud_deb=$(ls /var/cache/dkms-rs-test/debs/linux-image-"$cloud"_*.deb 2>/dev/null | head -n 1)
if [[ ! -d /lib/modules/$kernel/kernel || -z $other || -z $cloud_deb ]]; then
    echo "fleet-packages.sh: needs the 6.1 image and headers, the 6.12 and cloud headers and the cloud image .deb (see .ci/install-deps)" >&2
    exit 2
fi
work=$(mktemp -d /tmp/fleet-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/pkgs" && chown nobody "$work/pkgs"
mkdir -p "$work/image" && dpkg-deb -x "$cloud_deb" "$work/image"
makepkg_as_nobody tests/e2e/arch/linux-cloud KERNEL="$cloud" IMAGE_ROOT="$work/image"
check "makepkg built linux-cloud and linux-cloud-headers" test "$(ls "$work"/pkgs/linux-cloud-*.pkg.tar.zst | wc -l)" -eq 2

in_namespace() {
    set -u -o pipefail
    mount --make-rprivate /
    build=$(overlay_root build)
    apt_host=$(overlay_root apt-host)
    pacman_host=$(overlay_root pacman-host)
    for r in "$build" "$apt_host" "$pacman_host"; do
        install -m 755 target/release/dkms "$r/usr/local/sbin/dkms"
        find "$r/var/lib/dkms" -mindepth 1 -maxdepth 1 ! -name 'mok.*' -exec rm -rf {} +
        for d in "$r"/usr/src/*/; do [[ -f $d/dkms.conf ]] && rm -rf "$d"; done
    done
    strip_host "$apt_host"
    strip_host "$pacman_host"
    build_side && apt_side && pacman_side
    echo "$passed passed, $failed failed" > "$work/result"
    if [[ $failed != 0 ]]; then
        for log in "$work"/*.log; do echo "--- ${log##*/}"; cat "$log"; done
    fi
    [[ $failed == 0 ]]
}

# A fleet host: only $kernel's modules tree stays, no headers, no compiler, no make.
# Other kernel images are purged from its dpkg database (their maintainer scripts taken
# out first: they would update the initramfs and boot loader of the machine).
strip_host() {
    local r=$1 d p images=()
    for p in $(chroot "$r" dpkg-query -W -f '${Package} ${db:Status-Status}\n' 'linux-image-[0-9]*' | awk '$2 == "installed" {print $1}'); do
        if [[ $p != "linux-image-$kernel" ]]; then
            images+=("$p")
            rm -f "$r/var/lib/dpkg/info/$p".{preinst,postinst,prerm,postrm}
        fi
    done
    if ((${#images[@]})); then
        chroot "$r" apt-get remove --purge -y -qq "${images[@]}" > "$work/strip-${r##*/}.log" 2>&1
    fi
    for d in "$r"/usr/lib/modules/*; do
        [[ ${d##*/} == "$kernel" ]] || rm -rf "$d"
    done
    rm -rf "$r"/usr/lib/modules/"$kernel"/{build,source} "$r"/usr/src/linux-headers-*
    rm -f "$r"/usr/bin/{gcc,cc,c89,c99,make,gmake} "$r"/usr/bin/gcc-[0-9]* "$r"/usr/bin/x86_64-linux-gnu-gcc* \
        "$r"/usr/lib/gcc/x86_64-linux-gnu/*/cc1
}

dkms_on() { # root, dkms arguments...
    local r=$1
    shift
    chroot "$r" /usr/local/sbin/dkms "$@"
}

# The build host: hello 1.0 (tests/e2e/arch/dkms-hello's sources) added from /usr/src.
build_side() {
    local src=$build/usr/src/hello-1.0
    mkdir -p "$src"
    cp tests/e2e/arch/dkms-hello/{hello.c,Makefile,dkms.conf} "$src/"
    sed -i 's/@PKGVER@/1.0/' "$src/dkms.conf"
    echo 1.0 > "$src/VERSION"
    dkms_on "$build" add hello/1.0 > "$work/add.log" 2>&1
    check "dkms add hello/1.0 on the build host" test $? -eq 0
    dkms_on "$build" mkbmdeb hello/1.0 -k "$kernel" -k "$other" > "$work/mkbmdeb.log" 2>&1
    check "dkms mkbmdeb for $kernel and $other (building both first)" test $? -eq 0
    debs=$(tail -n 2 "$work/mkbmdeb.log")
    check "it printed the two packages' paths last" test "$debs" = \
        "/var/lib/dkms/hello/1.0/deb/hello-modules-${kernel}_1.0_amd64.deb
/var/lib/dkms/hello/1.0/deb/hello-modules-${other}_1.0_amd64.deb"
    dkms_on "$build" mkbmpkg hello/1.0 -k "$kernel" > "$work/mkbmpkg-dpkg-kernel.log" 2>&1
    check "dkms mkbmpkg for a kernel no pacman package owns fails (6)" test $? -eq 6
    check "and says why" grep -q "^Error! No pacman package owns /lib/modules/$kernel/kernel" "$work/mkbmpkg-dpkg-kernel.log"
    # A pacman-installed kernel on the build host (with its headers, to build against).
    mkdir -p "$build/var/lib/pacman" "$build/pkgs"
    printf '[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n' > "$build/etc/pacman.conf"
    cp "$work"/pkgs/linux-cloud-*.pkg.tar.zst "$build/pkgs/"
    rm -rf "$build/usr/lib/modules/$cloud"
    pacman --sysroot "$build" --noconfirm -U $(cd "$build" && ls pkgs/linux-cloud-*.pkg.tar.zst | sed 's|^|/|') > "$work/build-pacman.log" 2>&1
    check "pacman -U linux-cloud linux-cloud-headers on the build host" test $? -eq 0
    dkms_on "$build" mkbmpkg hello/1.0 -k "$cloud" > "$work/mkbmpkg.log" 2>&1
    check "dkms mkbmpkg for $cloud" test $? -eq 0
    pkg=$(tail -n 1 "$work/mkbmpkg.log")
    check "it printed the package's path last" test "$pkg" = "/var/lib/dkms/hello/1.0/pkg/hello-modules-$cloud-1.0-1-x86_64.pkg.tar.zst"
    signer=$(openssl x509 -inform DER -in "$build/var/lib/dkms/mok.pub" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p')
}

apt_side() {
    local repo=$apt_host/srv/fleet f
    mkdir -p "$repo"
    cp "$build"/var/lib/dkms/hello/1.0/deb/*.deb "$repo/"
    (cd "$repo" && apt-ftparchive packages . > Packages && apt-ftparchive release . > Release)
    rm -f "$apt_host"/etc/apt/sources.list "$apt_host"/etc/apt/sources.list.d/*
    echo "deb [trusted=yes] file:/srv/fleet ./" > "$apt_host/etc/apt/sources.list.d/fleet.list"
    check "the apt host has no compiler, make or headers" chroot "$apt_host" sh -c \
        '! command -v gcc && ! command -v cc && ! command -v make && ! ls -d /usr/src/linux-headers-* /lib/modules/*/build >/dev/null 2>&1'
    chroot "$apt_host" apt-get update -qq > "$work/apt-update.log" 2>&1
    check "apt-get update from the fleet repository" test $? -eq 0
    chroot "$apt_host" apt-get install -y "hello-modules-$other" > "$work/apt-other.log" 2>&1
    check "apt-get install of the package for $other, a kernel this host lacks, is refused" test $? -ne 0
    check "by its dependency on linux-image-$other" grep -q "Depends: linux-image-$other" "$work/apt-other.log"
    chroot "$apt_host" apt-get install -y -qq "hello-modules-$kernel" > "$work/apt-install.log" 2>&1
    check "apt-get install hello-modules-$kernel" test $? -eq 0
    f=/lib/modules/$kernel/updates/dkms/hello.ko
    check "the module is installed, signed by the build host's key ($signer)" \
        test "$(modinfo -F signer "$apt_host$f" 2>/dev/null)" = "$signer"
    check "dpkg -S names its package" test "$(chroot "$apt_host" dpkg -S "$f" 2>&1)" = "hello-modules-$kernel: $f"
    check "depmod indexed it" grep -q "updates/dkms/hello.ko" "$apt_host/lib/modules/$kernel/modules.dep"
    check "dkms status on the host shows it installed" test "$(dkms_on "$apt_host" status)" = "hello/1.0, $kernel, x86_64: installed"
    check "dkms owner names it" test "$(dkms_on "$apt_host" owner "$f")" = "hello/1.0, $kernel, x86_64: $f"
    dkms_on "$apt_host" verify > "$work/apt-verify.log" 2>&1
    check "dkms verify finds it as installed" test $? -eq 0
    dkms_on "$apt_host" uninstall hello/1.0 -k "$kernel" > "$work/apt-uninstall.log" 2>&1
    check "dkms uninstall refuses the package's file (6)" test $? -eq 6
    check "naming the package" grep -q "^Error! $f belongs to the package hello-modules-$kernel" "$work/apt-uninstall.log"
    check "the module is still there" test -f "$apt_host$f"
    chroot "$apt_host" apt-get remove --purge -y -qq "hello-modules-$kernel" > "$work/apt-remove.log" 2>&1
    check "apt-get remove --purge hello-modules-$kernel" test $? -eq 0
    check "no module file left" test ! -e "$apt_host$f"
    check "no dkms state left" test ! -e "$apt_host/var/lib/dkms/hello"
    check "depmod forgot it" bash -c "! grep -q hello.ko '$apt_host/lib/modules/$kernel/modules.dep'"
    check "dkms status shows nothing" test -z "$(dkms_on "$apt_host" status)"
}

pacman_side() {
    local repo=$pacman_host/srv/fleet f
    mkdir -p "$repo" "$pacman_host/var/lib/pacman" "$pacman_host/pkgs"
    cp "$build"/var/lib/dkms/hello/1.0/pkg/*.pkg.tar.zst "$repo/"
    repo-add -q "$repo/fleet.db.tar.gz" "$repo"/*.pkg.tar.zst > "$work/repo-add.log" 2>&1
    check "repo-add made the pacman repository" test $? -eq 0
    printf '[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n\n[fleet]\nServer = file:///srv/fleet\n' \
        > "$pacman_host/etc/pacman.conf"
    check "the pacman host has no compiler, make or headers" chroot "$pacman_host" sh -c \
        '! command -v gcc && ! command -v cc && ! command -v make && ! ls -d /usr/src/linux-headers-* /usr/lib/modules/*/build >/dev/null 2>&1'
    pacman --sysroot "$pacman_host" --noconfirm -Sy "hello-modules-$cloud" > "$work/pacman-nokernel.log" 2>&1
    check "pacman -S before its kernel is installed is refused" test $? -ne 0
    check "by its dependency on linux-cloud" grep -q "unable to satisfy dependency 'linux-cloud=" "$work/pacman-nokernel.log"
    cp "$work"/pkgs/linux-cloud-[0-9]*.pkg.tar.zst "$pacman_host/pkgs/"
    pacman --sysroot "$pacman_host" --noconfirm -U $(cd "$pacman_host" && ls pkgs/linux-cloud-[0-9]*.pkg.tar.zst | sed 's|^|/|') > "$work/pacman-kernel.log" 2>&1
    check "pacman -U linux-cloud (the kernel, without headers)" test $? -eq 0
    pacman --sysroot "$pacman_host" --noconfirm -S "hello-modules-$cloud" > "$work/pacman-install.log" 2>&1
    check "pacman -S hello-modules-$cloud" test $? -eq 0
    f=/usr/lib/modules/$cloud/updates/dkms/hello.ko
    check "the module is installed, signed by the build host's key ($signer)" \
        test "$(modinfo -F signer "$pacman_host$f" 2>/dev/null)" = "$signer"
    check "pacman -Qo names its package" bash -c \
        "pacman --sysroot '$pacman_host' -Qo '$f' | grep -qx '$f is owned by hello-modules-$cloud 1.0-1'"
    check "depmod indexed it" grep -q "updates/dkms/hello.ko" "$pacman_host/usr/lib/modules/$cloud/modules.dep"
    check "dkms status on the host shows it installed" test "$(dkms_on "$pacman_host" status)" = "hello/1.0, $cloud, x86_64: installed"
    dkms_on "$pacman_host" uninstall hello/1.0 -k "$cloud" > "$work/pacman-uninstall.log" 2>&1
    check "dkms uninstall refuses the package's file (6)" test $? -eq 6
    pacman --sysroot "$pacman_host" --noconfirm -R "hello-modules-$cloud" > "$work/pacman-remove.log" 2>&1
    check "pacman -R hello-modules-$cloud" test $? -eq 0
    check "no module file left" test ! -e "$pacman_host$f"
    check "no dkms state left" test ! -e "$pacman_host/var/lib/dkms/hello"
}

export work kernel other cloud passed failed
export -f in_namespace strip_host dkms_on build_side apt_side pacman_side check overlay_root
unshare -m bash -c in_namespace
rc=$?
cat "$work/result" 2>/dev/null || echo "$passed passed, $failed failed (the namespace did not finish)"
exit $rc
