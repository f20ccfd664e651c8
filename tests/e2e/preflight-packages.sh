#!/bin/bash
# dkms preflight through the package managers, end to end: a kernel's headers arrive
# through real `apt-get install` (Debian's 6.12 headers packages, with our
# DPkg::Pre-Install-Pkgs hook) and real `pacman -U` (a 6.12 headers package made by
# makepkg from Debian's, with our PreTransaction hook), on a root where `classdev`
# (builds on 6.1, not on 6.12) and `patched` (builds on both) are installed for 6.1.
#   preflight=refuse: the transaction stops, nothing of 6.12 is unpacked;
#   preflight=warn:   the table is printed and the headers are installed; the kernel's
#                     postinst then takes preflight's build of `patched` and runs no make,
#                     and does not compile `classdev` again (its failure is unchanged).
# Every host is a throwaway overlay of this machine's root in a private mount namespace
# (tests/e2e/lib.sh), so nothing reaches the machine. Prints 'N passed, N failed'.
set -u -o pipefail
cd "$(dirname "$0")/../.."
. tests/e2e/lib.sh

if [[ $(id -u) != 0 ]] || ! has_commands makepkg pacman apt-get dpkg-deb; then
    echo "preflight-packages.sh: needs root, apt, makepkg and pacman (see .ci/install-deps)" >&2
    exit 2
fi
cargo build --release --quiet || exit 2
old=$(newest_headers '6.1.*-amd64' -v cloud rt)
new=$(newest_headers '6.12.*-amd64')
series=${new%-amd64}
debs=()
for p in "linux-headers-$new" "linux-headers-$series-common" "linux-kbuild-$series"; do
    debs+=($(ls /var/cache/dkms-rs-test/debs/"$p"_*.deb 2>/dev/null | head -n 1))
done
if [[ -z $old || -z $new || ${#debs[@]} != 3 ]]; then
    echo "preflight-packages.sh: needs the 6.1 and 6.12 headers and the 6.12 headers' three .deb files (see .ci/install-deps)" >&2
    exit 2
fi
work=$(mktemp -d /tmp/preflight-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/pkgs" "$work/fake-image/lib/modules/$new" && chown nobody "$work/pkgs"
# A pacman kernel package pair for 6.12 (only its headers package is used).
makepkg_as_nobody tests/e2e/arch/linux-cloud KERNEL="$new" IMAGE_ROOT="$work/fake-image"
headers_pkg=$(ls "$work"/pkgs/linux-cloud-headers-*.pkg.tar.zst 2>/dev/null | head -n 1)
check "makepkg built a 6.12 headers package" test -n "$headers_pkg"

# make, counted: which dkms action ran it (preflight or autoinstall), one line a run.
COUNTING_MAKE='#!/bin/sh
p=$$ what=other
while [ "$p" -gt 1 ]; do
    case "$(tr "\0" " " < /proc/$p/cmdline 2>/dev/null)" in
        *"dkms preflight"*) what=preflight; break ;;
        *"dkms autoinstall"*) what=autoinstall; break ;;
    esac
    p=$(awk "/^PPid:/ {print \$2}" /proc/$p/status 2>/dev/null || echo 1)
done
echo "$what" >> /var/log/make-runs
exec /usr/bin/make.real "$@"
'

in_namespace() {
    set -u -o pipefail
    mount --make-rprivate /
    apt_root=$(overlay_root apt-host)
    pacman_root=$(overlay_root pacman-host)
    for r in "$apt_root" "$pacman_root"; do
        prepare "$r" > "$work/prepare-${r##*/}.log" 2>&1
        check "${r##*/}: classdev and patched installed for $old" test "$(chroot "$r" dkms status classdev -k "$old"; chroot "$r" dkms status patched -k "$old")" = \
"classdev/1.0, $old, x86_64: installed
patched/1.0, $old, x86_64: installed"
    done
    apt_side && pacman_side
    echo "$passed passed, $failed failed" > "$work/result"
    if [[ $failed != 0 ]]; then
        for log in "$work"/*.log; do echo "--- ${log##*/}"; cat "$log"; done
    fi
    [[ $failed == 0 ]]
}

# A host: our dkms and its hooks in place of Debian's, no 6.12 kernel or headers
# (Debian's packages purged, their scripts taken out first), classdev and patched
# installed for 6.1, make counted.
prepare() {
    local r=$1 p
    for p in $(chroot "$r" dpkg-query -W -f '${Package} ${db:Status-Status}\n' "linux-image-$new" "linux-headers-$new" "linux-headers-$series-common" "linux-kbuild-$series" 2>/dev/null | awk '$2 == "installed" {print $1}'); do
        rm -f "$r/var/lib/dpkg/info/$p".{preinst,postinst,prerm,postrm}
        chroot "$r" dpkg --purge "$p"
    done
    rm -rf "$r/usr/lib/modules/$new" "$r/usr/src/linux-headers-$new" "$r/usr/src/linux-headers-$series-common" "$r/usr/lib/linux-kbuild-$series"
    bash scripts/install --destdir "$r" --binary target/release/dkms
    find "$r/var/lib/dkms" -mindepth 1 -maxdepth 1 ! -name 'mok.*' -exec rm -rf {} +
    for m in classdev patched; do
        cp -a "tests/fixtures/modules/$m-1.0" "$r/usr/src/"
        echo 'AUTOINSTALL=yes' >> "$r/usr/src/$m-1.0/dkms.conf"
        chroot "$r" dkms install "$m/1.0" -k "$old"
    done
    mv "$r/usr/bin/make" "$r/usr/bin/make.real"
    printf '%s' "$COUNTING_MAKE" > "$r/usr/bin/make" && chmod 755 "$r/usr/bin/make"
    : > "$r/var/log/make-runs"
}

runs() { # root, action: how many make runs that action made
    grep -c "^$2\$" "$1/var/log/make-runs"
}

apt_side() {
    local r=$apt_root d
    mkdir -p "$r/debs"
    cp "${debs[@]}" "$r/debs/"
    local files=()
    for d in "${debs[@]}"; do files+=("/debs/${d##*/}"); done
    echo 'preflight="refuse"' > "$r/etc/dkms/framework.conf"
    chroot "$r" apt-get install -y --no-install-recommends "${files[@]}" > "$work/apt-refuse.log" 2>&1
    check "apt: preflight=refuse stops apt-get install of the 6.12 headers" test $? -ne 0
    check "apt: the table names classdev's failure" grep -q "^classdev/1.0  *$new  fails (10): fx_classdev.c:15:20: error: too many arguments to function ‘class_create’" "$work/apt-refuse.log"
    check "apt: and patched builds" grep -q "^patched/1.0  *$new  builds (built now)" "$work/apt-refuse.log"
    check "apt: the refusal says how to go on" grep -q "preflight=refuse: the kernel's installation is stopped before anything of it is unpacked" "$work/apt-refuse.log"
    check "apt: nothing of 6.12 was unpacked" bash -c "! chroot '$r' dpkg-query -W -f '\${db:Status-Status}' linux-headers-$new 2>/dev/null | grep -q . && ! test -e '$r/usr/src/linux-headers-$new'"
    check "apt: nothing was installed for 6.12" test ! -e "$r/lib/modules/$new"
    check "apt: preflight compiled ($(runs "$r" preflight) make runs)" test "$(runs "$r" preflight)" -ge 2
    echo 'preflight="warn"' > "$r/etc/dkms/framework.conf"
    : > "$r/var/log/make-runs"
    chroot "$r" apt-get install -y --no-install-recommends "${files[@]}" > "$work/apt-warn.log" 2>&1
    check "apt: preflight=warn prints the table and lets dpkg go on" grep -q "preflight=warn: the kernel's installation goes on" "$work/apt-warn.log"
    check "apt: the 6.12 headers are unpacked" test -d "$r/usr/src/linux-headers-$new/include"
    # The headers' postinst runs autoinstall for 6.12 (as the image's would): classdev
    # fails there as with the original (the package is left half-configured), patched
    # is installed from preflight's build.
    check "apt: patched is installed for 6.12" test "$(chroot "$r" dkms status patched -k "$new")" = "patched/1.0, $new, x86_64: installed"
    check "apt: with preflight's build: autoinstall ran no make" test "$(runs "$r" autoinstall)" = 0
    check "apt: the second preflight compiled nothing (patched kept, classdev's failure unchanged)" test "$(runs "$r" preflight)" = 0
    check "apt: classdev's failure is remembered" bash -c "chroot '$r' dkms status --failed | grep -q '^classdev/1.0, $new, x86_64: failed (exit 10)'"
}

pacman_side() {
    local r=$pacman_root name
    mkdir -p "$r/var/lib/pacman" "$r/pkgs"
    printf '[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n' > "$r/etc/pacman.conf"
    cp "$headers_pkg" "$r/pkgs/"
    name=/pkgs/${headers_pkg##*/}
    # The package's links point at Debian's common headers and kbuild: this host keeps
    # those files, not the kernel (no /usr/lib/modules/<6.12>).
    cp -a "/usr/src/linux-headers-$series-common" "$r/usr/src/"
    cp -a "/usr/lib/linux-kbuild-$series" "$r/usr/lib/"
    echo 'preflight="refuse"' > "$r/etc/dkms/framework.conf"
    pacman --sysroot "$r" --noconfirm -U "$name" > "$work/pacman-refuse.log" 2>&1
    check "pacman: preflight=refuse aborts pacman -U of the 6.12 headers" test $? -ne 0
    check "pacman: the hook ran preflight (the table names classdev's failure)" grep -q "classdev/1.0  *$new  fails (10)" "$work/pacman-refuse.log"
    check "pacman: nothing of 6.12 was installed" test ! -e "$r/usr/lib/modules/$new"
    check "pacman: the package is not installed" bash -c "! pacman --sysroot '$r' -Q linux-cloud-headers >/dev/null 2>&1"
    echo 'preflight="warn"' > "$r/etc/dkms/framework.conf"
    : > "$r/var/log/make-runs"
    pacman --sysroot "$r" --noconfirm -U "$name" > "$work/pacman-warn.log" 2>&1
    check "pacman: preflight=warn lets pacman -U go on" test $? -eq 0
    check "pacman: it warned" grep -q "preflight=warn: the kernel's installation goes on" "$work/pacman-warn.log"
    check "pacman: the headers are installed" test -d "$r/usr/lib/modules/$new/build/include"
    check "pacman: preflight kept patched's build for 6.12" test -d "$r/var/lib/dkms/patched/1.0/.preflight/$new/x86_64/module"
}

export work old new series headers_pkg COUNTING_MAKE passed failed
export -f in_namespace prepare runs apt_side pacman_side check overlay_root
export debs_list="${debs[*]}"
unshare -m bash -c 'debs=($debs_list); in_namespace'
rc=$?
cat "$work/result" 2>/dev/null || echo "$passed passed, $failed failed (the namespace did not finish)"
exit $rc
