#!/bin/bash
# Prebuilt module packages for a fleet, end to end: a build host compiles once with
# `dkms mkbmdeb` / `dkms mkbmpkg` / `dkms mkbmrpm`; fleet hosts with no compiler and no
# kernel headers install the packages from a real repository (apt-ftparchive for apt,
# repo-add for pacman, createrepo_c for dnf) with `apt-get install` / `pacman -S` /
# `dnf install`, and remove them again.
#
# Where it runs: every host is a throwaway root, an overlay of this machine's root with a
# tmpfs on top, in one private mount namespace (nothing reaches the machine):
#   build      the machine's toolchain and kernel headers; our dkms builds and packages;
#   apt-host   Debian with only the 6.1 kernel image: compilers, make, kernel headers and
#              the other kernel images taken out; apt sees only the fleet repository;
#   pacman-host the same, with pacman's own database, where the kernel comes from a pacman
#              package (Debian's cloud kernel repackaged by tests/e2e/arch/linux-cloud).
# Commands run chrooted into their host; our dkms is the release binary, copied in.
# Each package's whole lifecycle on its host: install, upgrade, downgrade, reinstall,
# removal and purge each leave exactly what a fresh install of the package that stays
# leaves (its state under /var/lib/dkms listed after a `dkms status`); the module's
# `-dkms` source package and the prebuilt one replace each other through the package
# manager, in both orders, on the build host (Debian's real acpi-call-dkms).
# Prints 'N passed, N failed'.
set -u -o pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

if [[ $(id -u) != 0 ]] || ! has_commands makepkg pacman repo-add apt-ftparchive rpmbuild createrepo_c dnf; then
    echo "fleet-packages.sh: needs root, makepkg, pacman, apt-ftparchive, rpmbuild, createrepo_c and dnf (see .ci/install-deps)" >&2
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
trap '[[ -n ${E2E_KEEP:-} ]] && echo "kept $work" || rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/pkgs" && chown nobody "$work/pkgs"
mkdir -p "$work/image" && dpkg-deb -x "$cloud_deb" "$work/image"
makepkg_as_nobody tests/e2e/arch/linux-cloud KERNEL="$cloud" IMAGE_ROOT="$work/image"
check "makepkg built linux-cloud and linux-cloud-headers" test "$(ls "$work"/pkgs/linux-cloud-*.pkg.tar.zst | wc -l)" -eq 2
makepkg_as_nobody tests/e2e/arch/dkms-hello
check "makepkg built dkms-hello (the module's source package)" test -f "$work"/pkgs/dkms-hello-1.0-1-any.pkg.tar.zst
cloud_version=$(dpkg-deb -f "$cloud_deb" Version)
rpmbuild -bb --define "_topdir $work/rpmbuild" --define "image $work/image" \
    --define "kver ${cloud_version%-*}" --define "krel ${cloud_version##*-}" \
    tests/e2e/rpm/kernel-core.spec > "$work/kernel-core-rpmbuild.log" 2>&1
kernel_rpm=$(ls "$work"/rpmbuild/RPMS/x86_64/kernel-core-*.rpm 2>/dev/null)
rpmbuild -bb --define "_topdir $work/rpmbuild" tests/e2e/rpm/base-system.spec >> "$work/kernel-core-rpmbuild.log" 2>&1
base_rpm=$(ls "$work"/rpmbuild/RPMS/noarch/base-system-*.rpm 2>/dev/null)
check "rpmbuild made kernel-core (the cloud kernel as an RPM)" test -f "$kernel_rpm"
check "rpmbuild made base-system (what the rpm host has)" test -f "$base_rpm"
# Debian's rpm keeps its database in ~/.rpmdb; an RPM distribution's is /var/lib/rpm.
mkdir -p "$work/rpm-home" && echo '%_dbpath /var/lib/rpm' > "$work/rpm-home/.rpmmacros"
acpi_dkms=$(ls /var/cache/dkms-rs-test/debs/acpi-call-dkms_*.deb 2>/dev/null | head -n 1)
if [[ -z $acpi_dkms ]]; then
    echo "fleet-packages.sh: needs Debian's acpi-call-dkms .deb (see .ci/install-deps)" >&2
    exit 2
fi

in_namespace() {
    set -u -o pipefail
    mount --make-rprivate /
    build=$(overlay_root build)
    apt_host=$(overlay_root apt-host)
    pacman_host=$(overlay_root pacman-host)
    rpm_host=$(overlay_root rpm-host)
    for r in "$build" "$apt_host" "$pacman_host" "$rpm_host"; do
        install -m 755 target/release/dkms "$r/usr/local/sbin/dkms"
        find "$r/var/lib/dkms" -mindepth 1 -maxdepth 1 ! -name 'mok.*' -exec rm -rf {} +
        for d in "$r"/usr/src/*/; do [[ -f $d/dkms.conf ]] && rm -rf "$d"; done
    done
    # The build host's package scripts (Debian's common.postinst) run our dkms too.
    ln -sf /usr/local/sbin/dkms "$build/usr/sbin/dkms"
    strip_host "$apt_host"
    strip_host "$pacman_host"
    strip_host "$rpm_host"
    build_side && apt_side && pacman_side && rpm_side && source_package_side
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
        "/var/lib/dkms/hello/1.0/deb/hello-modules-${kernel}_1.0-1_amd64.deb
/var/lib/dkms/hello/1.0/deb/hello-modules-${other}_1.0-1_amd64.deb"
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
    local v
    for v in 2.0 1.0_rc1; do
        hello_source "$v"
        dkms_on "$build" mkbmdeb "hello/$v" -k "$kernel" > "$work/mkbmdeb-$v.log" 2>&1
        check "dkms mkbmdeb hello/$v for $kernel" test $? -eq 0
        dkms_on "$build" mkbmpkg "hello/$v" -k "$cloud" > "$work/mkbmpkg-$v.log" 2>&1
        check "dkms mkbmpkg hello/$v for $cloud" test $? -eq 0
    done
    check "dpkg sorts the 1.0_rc1 package before 1.0's" dpkg --compare-versions \
        "$(dpkg-deb -f "$build"/var/lib/dkms/hello/1.0_rc1/deb/*.deb Version)" lt "$(dpkg-deb -f "$build"/var/lib/dkms/hello/1.0/deb/hello-modules-"$kernel"_*.deb Version)"
    check "pacman sorts the 1.0_rc1 package before 1.0's" test "$(vercmp \
        "$(pkg_version "$build"/var/lib/dkms/hello/1.0_rc1/pkg/*.pkg.tar.zst)" "$(pkg_version "$build"/var/lib/dkms/hello/1.0/pkg/*.pkg.tar.zst)")" = -1
}

# hello's sources at version $1 added on the build host.
hello_source() {
    local v=$1 src=$build/usr/src/hello-$1
    mkdir -p "$src"
    cp tests/e2e/arch/dkms-hello/{hello.c,Makefile,dkms.conf} "$src/"
    sed -i "s/@PKGVER@/$v/" "$src/dkms.conf"
    echo "$v" > "$src/VERSION"
    dkms_on "$build" add "hello/$v" > "$work/add-$v.log" 2>&1
}

pkg_version() { # a .pkg.tar.zst: its pkgver-pkgrel
    bsdtar -xOf "$1" .PKGINFO | sed -n 's/^pkgver = //p'
}

# What a host holds of hello, after a `dkms status` (which writes its caches): every
# path under the module's dkms directory and the kernel's updates/, with its type.
hello_state() { # root, kernel modules dir
    dkms_on "$1" status > /dev/null 2>&1
    (cd "$1" && find var/lib/dkms/hello "$2" -printf '%y %p %l\n' 2>/dev/null | sort)
}

# The lifecycle of a host's package: $install_cmd VERSION installs (or upgrades or
# downgrades to) that version's package, $remove_cmd removes it.
lifecycle() { # root, modules dir, kernel, name of the log
    local r=$1 mods=$2 k=$3 log=$4 fresh1 fresh2
    $install_cmd 2.0 > "$work/$log-fresh2.log" 2>&1
    check "$log: fresh install of 2.0" test $? -eq 0
    fresh2=$(hello_state "$r" "$mods")
    $remove_cmd > "$work/$log-remove2.log" 2>&1
    check "$log: removal of 2.0 leaves nothing of hello" test ! -e "$r/var/lib/dkms/hello"
    $install_cmd 1.0 > "$work/$log-fresh1.log" 2>&1
    check "$log: fresh install of 1.0" test $? -eq 0
    fresh1=$(hello_state "$r" "$mods")
    $install_cmd 2.0 > "$work/$log-upgrade.log" 2>&1
    check "$log: upgrade 1.0 -> 2.0" test $? -eq 0
    check "$log: the upgrade leaves what a fresh install of 2.0 leaves" test "$(hello_state "$r" "$mods")" = "$fresh2"
    check "$log: dkms status after the upgrade" test "$(dkms_on "$r" status)" = "hello/2.0, $k, x86_64: installed"
    $install_cmd 1.0 > "$work/$log-downgrade.log" 2>&1
    check "$log: downgrade 2.0 -> 1.0" test $? -eq 0
    check "$log: the downgrade leaves what a fresh install of 1.0 leaves" test "$(hello_state "$r" "$mods")" = "$fresh1"
    $install_cmd 1.0 reinstall > "$work/$log-reinstall.log" 2>&1
    check "$log: reinstall of 1.0" test $? -eq 0
    check "$log: the reinstall leaves what a fresh install of 1.0 leaves" test "$(hello_state "$r" "$mods")" = "$fresh1"
    mkdir -p "$r/${mods%/*/updates}/6.99.0-1-amd64"
    dkms_on "$r" autoinstall -k 6.99.0-1-amd64 > "$work/$log-autoinstall.log" 2>&1
    check "$log: autoinstall for a new kernel skips the prebuilt module (0)" test $? -eq 0
    check "$log: saying why" grep -q "^hello/1.0 has prebuilt modules only" "$work/$log-autoinstall.log"
    rmdir "$r/${mods%/*/updates}/6.99.0-1-amd64"
    dkms_on "$r" verify > "$work/$log-verify.log" 2>&1
    check "$log: dkms verify" test $? -eq 0
    $remove_cmd > "$work/$log-purge.log" 2>&1
    check "$log: removal" test $? -eq 0
    check "$log: no dkms state left" test ! -e "$r/var/lib/dkms/hello"
    check "$log: no module file left" test -z "$(find "$r/$mods" -name 'hello.ko*' 2>/dev/null)"
    check "$log: dkms status shows nothing" test -z "$(dkms_on "$r" status)"
}

apt_side() {
    local repo=$apt_host/srv/fleet f
    mkdir -p "$repo"
    cp "$build"/var/lib/dkms/hello/*/deb/*.deb "$repo/"
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
    chroot "$apt_host" apt-get install -y -qq "hello-modules-$kernel=1.0-1" > "$work/apt-install.log" 2>&1
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
    install_cmd=apt_install remove_cmd=apt_purge lifecycle "$apt_host" "lib/modules/$kernel/updates" "$kernel" apt
}

apt_install() { # version [reinstall]
    local again=()
    [[ ${2:-} == reinstall ]] && again=(--reinstall)
    chroot "$apt_host" apt-get install -y --allow-downgrades "${again[@]}" "hello-modules-$kernel=$1-1"
}

apt_purge() {
    chroot "$apt_host" apt-get remove --purge -y "hello-modules-$kernel"
}

pacman_side() {
    local repo=$pacman_host/srv/fleet f
    mkdir -p "$repo" "$pacman_host/var/lib/pacman" "$pacman_host/pkgs"
    cp "$build"/var/lib/dkms/hello/{1.0,2.0}/pkg/*.pkg.tar.zst "$repo/"
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
    pacman --sysroot "$pacman_host" --noconfirm -U "/srv/fleet/hello-modules-$cloud-1.0-1-x86_64.pkg.tar.zst" > "$work/pacman-install.log" 2>&1
    check "pacman -S hello-modules-$cloud" test $? -eq 0
    f=/usr/lib/modules/$cloud/updates/dkms/hello.ko
    check "the module is installed, signed by the build host's key ($signer)" \
        test "$(modinfo -F signer "$pacman_host$f" 2>/dev/null)" = "$signer"
    pacman --sysroot "$pacman_host" -Qkk "hello-modules-$cloud" > "$work/pacman-qkk.log" 2>&1
    check "pacman -Qkk finds every file as packaged (.MTREE)" test $? -eq 0
    check "pacman -Qi shows the conflict with the source packages" bash -c \
        "pacman --sysroot '$pacman_host' -Qi 'hello-modules-$cloud' | grep -q '^Conflicts With *: hello-dkms  dkms-hello'"
    cp "$work"/pkgs/dkms-hello-1.0-1-any.pkg.tar.zst "$pacman_host/pkgs/"
    pacman --sysroot "$pacman_host" --noconfirm -Udd /pkgs/dkms-hello-1.0-1-any.pkg.tar.zst > "$work/pacman-conflict.log" 2>&1
    check "pacman will not put dkms-hello beside it (--noconfirm keeps the installed one)" grep -q "unresolvable package conflicts" "$work/pacman-conflict.log"
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
    install_cmd=pacman_install remove_cmd=pacman_remove lifecycle "$pacman_host" "usr/lib/modules/$cloud/updates" "$cloud" pacman
}

pacman_install() { # version [reinstall]
    pacman --sysroot "$pacman_host" --noconfirm -U "/srv/fleet/hello-modules-$cloud-$1-1-x86_64.pkg.tar.zst"
}

pacman_remove() {
    pacman --sysroot "$pacman_host" --noconfirm -R "hello-modules-$cloud"
}

rpm_on() { # root, rpm arguments...
    local r=$1
    shift
    HOME=$work/rpm-home rpm --root "$r" "$@"
}

dnf_on() { # root, dnf arguments... (the root's repository is /srv/fleet)
    local r=$1
    shift
    HOME=$work/rpm-home dnf -y --installroot="$r" --setopt=reposdir=/dev/null --releasever=1 \
        --repofrompath="fleet,file://$r/srv/fleet" --setopt=fleet.gpgcheck=0 \
        --refresh "$@"
}

# RPM: the build host gets the cloud kernel from kernel-core's rpm too (its files are the
# ones pacman put there), makes kmod-hello packages, and the rpm host installs them with
# dnf from a createrepo_c repository, pulling in the kernel package they require.
rpm_side() {
    local repo=$rpm_host/srv/fleet f v
    mkdir -p "$repo"
    dkms_on "$build" mkbmrpm hello/1.0 -k "$cloud" > "$work/mkbmrpm-norpm.log" 2>&1
    check "dkms mkbmrpm for a kernel no rpm package owns fails (6)" test $? -eq 6
    check "and says why" grep -q "^Error! No rpm package owns /lib/modules/$cloud/modules.builtin" "$work/mkbmrpm-norpm.log"
    rpm_on "$build" --initdb && rpm_on "$build" -i --replacefiles "$kernel_rpm" > "$work/build-rpm.log" 2>&1
    check "rpm -i kernel-core on the build host" test $? -eq 0
    for v in 1.0 2.0 1.0_rc1; do
        dkms_on "$build" mkbmrpm "hello/$v" -k "$cloud" > "$work/mkbmrpm-$v.log" 2>&1
        check "dkms mkbmrpm hello/$v for $cloud" test $? -eq 0
    done
    check "it printed the package's path last" test "$(tail -n 1 "$work/mkbmrpm-1.0.log")" = \
        "/var/lib/dkms/hello/1.0/rpm/kmod-hello-$cloud-1.0-1.x86_64.rpm"
    check "rpm sorts the 1.0_rc1 package (1.0~rc1) before 1.0's" test "$(rpm --eval '%{lua: print(rpm.vercmp("1.0~rc1", "1.0"))}')" = -1
    check "rpm names that version 1.0~rc1" test "$(rpm -qp --queryformat '%{VERSION}' "$build"/var/lib/dkms/hello/1.0_rc1/rpm/*.rpm 2>/dev/null)" = "1.0~rc1"
    cp "$build"/var/lib/dkms/hello/{1.0,2.0}/rpm/*.rpm "$repo/"
    createrepo_c -q "$repo" > "$work/createrepo.log" 2>&1
    check "createrepo_c made the repository (modules only)" test $? -eq 0
    rpm_on "$rpm_host" --initdb && rpm_on "$rpm_host" -i "$base_rpm"
    check "the rpm host has no compiler, make or headers" chroot "$rpm_host" sh -c \
        '! command -v gcc && ! command -v cc && ! command -v make && ! ls -d /usr/src/linux-headers-* /lib/modules/*/build >/dev/null 2>&1'
    dnf_on "$rpm_host" install "kmod-hello-$cloud-1.0" > "$work/dnf-nokernel.log" 2>&1
    check "dnf install while no repository has its kernel is refused" test $? -ne 0
    check "by its requirement of kernel-core" grep -q "nothing provides kernel-core = " "$work/dnf-nokernel.log"
    cp "$kernel_rpm" "$repo/" && createrepo_c -q --update "$repo" > "$work/createrepo.log" 2>&1
    dnf_on "$rpm_host" install "kmod-hello-$cloud-1.0" > "$work/dnf-install.log" 2>&1
    check "dnf install kmod-hello-$cloud (pulling in kernel-core)" test $? -eq 0
    check "kernel-core came with it" test "$(rpm_on "$rpm_host" -q --queryformat "%{NAME}-%{VERSION}-%{RELEASE}" kernel-core)" = "kernel-core-$cloud_version"
    # A machine's kernel is one its user wants: without this dnf would take kernel-core away
    # with the last package that pulled it in (clean_requirements_on_remove).
    dnf_on "$rpm_host" mark install kernel-core > "$work/dnf-mark.log" 2>&1
    f=/lib/modules/$cloud/updates/dkms/hello.ko
    check "the module is installed, signed by the build host's key ($signer)" \
        test "$(modinfo -F signer "$rpm_host$f" 2>/dev/null)" = "$signer"
    check "rpm -qf names its package" test "$(rpm_on "$rpm_host" -qf "$f")" = "kmod-hello-$cloud-1.0-1.x86_64"
    rpm_on "$rpm_host" -V "kmod-hello-$cloud" > "$work/rpm-verify.log" 2>&1
    check "rpm -V finds every file as packaged" test $? -eq 0
    check "depmod indexed it (%posttrans)" grep -q "updates/dkms/hello.ko" "$rpm_host/lib/modules/$cloud/modules.dep"
    check "dkms status on the host shows it installed" test "$(dkms_on "$rpm_host" status)" = "hello/1.0, $cloud, x86_64: installed"
    check "dkms owner names it" test "$(dkms_on "$rpm_host" owner "$f")" = "hello/1.0, $cloud, x86_64: $f"
    dkms_on "$rpm_host" uninstall hello/1.0 -k "$cloud" > "$work/rpm-uninstall.log" 2>&1
    check "dkms uninstall refuses the package's file (6)" test $? -eq 6
    check "naming the package" grep -q "^Error! $f belongs to the package kmod-hello-$cloud" "$work/rpm-uninstall.log"
    check "and dnf to remove it with" grep -q "^Remove that package first (dnf remove kmod-hello-$cloud), or leave this module to it.$" "$work/rpm-uninstall.log"
    dnf_on "$rpm_host" remove "kmod-hello-$cloud" > "$work/dnf-remove.log" 2>&1
    check "dnf remove kmod-hello-$cloud" test $? -eq 0
    check "no module file left" test ! -e "$rpm_host$f"
    check "no dkms state left" test ! -e "$rpm_host/var/lib/dkms/hello"
    check "kernel-core stays" test -f "$rpm_host/lib/modules/$cloud/modules.dep" -a -f "$rpm_host/boot/vmlinuz-$cloud"
    check "depmod forgot it" bash -c "! grep -q hello.ko '$rpm_host/lib/modules/$cloud/modules.dep'"
    check "and rpm still has kernel-core" test "$(rpm_on "$rpm_host" -q --queryformat "%{NAME}" kernel-core)" = kernel-core
    install_cmd=dnf_install remove_cmd=dnf_remove lifecycle "$rpm_host" "lib/modules/$cloud/updates" "$cloud" rpm
}

dnf_install() { # version [reinstall]
    if [[ ${2:-} == reinstall ]]; then
        dnf_on "$rpm_host" reinstall "kmod-hello-$cloud-$1-1"
    elif rpm_on "$rpm_host" -q "kmod-hello-$cloud" > /dev/null && \
        [[ $(rpm --eval "%{lua: print(rpm.vercmp('$1', '$(rpm_on "$rpm_host" -q --queryformat '%{VERSION}' "kmod-hello-$cloud")'))}") == -1 ]]; then
        dnf_on "$rpm_host" downgrade "kmod-hello-$cloud-$1-1"
    else
        dnf_on "$rpm_host" install "kmod-hello-$cloud-$1-1"
    fi
}

dnf_remove() {
    dnf_on "$rpm_host" remove "kmod-hello-$cloud"
}

# On the build host, which has a compiler and headers: Debian's acpi-call-dkms and the
# prebuilt package made from it replace each other through apt, in both orders.
source_package_side() {
    local f=/lib/modules/$kernel/updates/dkms/acpi_call.ko debs=$build/srv/debs prebuilt
    mkdir -p "$debs"
    cp "$acpi_dkms" "$debs/"
    chroot "$build" apt-get install -y "/srv/debs/${acpi_dkms##*/}" > "$work/acpi-dkms.log" 2>&1
    check "apt-get install acpi-call-dkms on the build host" test $? -eq 0
    dkms_on "$build" install acpi-call/1.2.2 -k "$kernel" > "$work/acpi-install.log" 2>&1
    dkms_on "$build" mkbmdeb acpi-call/1.2.2 -k "$kernel" > "$work/acpi-mkbmdeb.log" 2>&1
    check "dkms mkbmdeb acpi-call/1.2.2" test $? -eq 0
    prebuilt=$(tail -n 1 "$work/acpi-mkbmdeb.log")
    cp "$build$prebuilt" "$debs/"
    prebuilt=/srv/debs/${prebuilt##*/}
    chroot "$build" apt-get install -y "$prebuilt" > "$work/acpi-prebuilt.log" 2>&1
    check "apt-get install of the prebuilt package over acpi-call-dkms" test $? -eq 0
    check "apt took acpi-call-dkms away (Conflicts)" bash -c "! chroot '$build' dpkg-query -W -f '\${db:Status-Status}' acpi-call-dkms 2>/dev/null | grep -qx installed"
    check "the module is the prebuilt package's" test "$(chroot "$build" dpkg -S "$f" 2>&1)" = "acpi-call-modules-$kernel: $f"
    check "dkms status shows it installed" test "$(dkms_on "$build" status acpi-call -k "$kernel")" = "acpi-call/1.2.2, $kernel, x86_64: installed"
    chroot "$build" apt-get install -y "/srv/debs/${acpi_dkms##*/}" > "$work/acpi-dkms-again.log" 2>&1
    check "apt-get install acpi-call-dkms over the prebuilt package" test $? -eq 0
    check "acpi-call-dkms is configured" test "$(chroot "$build" dpkg-query -W -f '${db:Status-Status}' acpi-call-dkms)" = installed
    check "apt took the prebuilt package away" bash -c "! chroot '$build' dpkg-query -W -f '\${db:Status-Status}' acpi-call-modules-$kernel 2>/dev/null | grep -qx installed"
    check "the module is dkms's again (no package owns it)" bash -c "! chroot '$build' dpkg -S '$f' >/dev/null 2>&1"
    check "dkms status shows it installed" test "$(dkms_on "$build" status acpi-call -k "$kernel")" = "acpi-call/1.2.2, $kernel, x86_64: installed"
}

export work kernel other cloud cloud_version acpi_dkms kernel_rpm base_rpm passed failed
export -f in_namespace strip_host dkms_on build_side apt_side pacman_side check overlay_root \
    hello_source pkg_version hello_state lifecycle apt_install apt_purge pacman_install pacman_remove \
    rpm_on dnf_on rpm_side dnf_install dnf_remove source_package_side
unshare -m bash -c in_namespace
rc=$?
cat "$work/result" 2>/dev/null || echo "$passed passed, $failed failed (the namespace did not finish)"
exit $rc
