#!/bin/bash
# The Arch packager's workflow, end to end, through real makepkg and real pacman 6 (Debian
# ships both): our package (scripts/package arch) installed by `pacman -U`, then a
# `dkms-<name>` source package (tests/e2e/arch/dkms-hello, written as Arch packagers write
# them) built by makepkg and installed, upgraded and removed by pacman, whose hooks are
# ours:
#   1. pacman -U dkms-hello 1.0: the module is built, signed and installed for every kernel
#      with headers and a modules tree, and reported for a kernel with headers only;
#   2. pacman -U dkms-hello 2.0: version 1.0's files and state are gone, 2.0 is installed;
#   3. pacman -U of a new kernel and its headers (Debian's cloud kernel repackaged by
#      tests/e2e/arch/linux-cloud/PKGBUILD): the module is built for it;
#   4. pacman -U dkms-broken, whose dkms.conf bash cannot read: the hook names the file, the
#      line and the fix, the transaction completes, the dkms tree holds nothing of it;
#   5. pacman -R dkms-hello: no module file, no source and no state left;
#   6. a dkms-<name> package made by `dkms scaffold --pkgbuild` from a module's bare
#      sources builds with makepkg and installs, upgrades and removes through pacman.
#
# Where it runs: a throwaway root, an overlay of this machine's own root (the toolchain and
# Debian's kernel trees) with a tmpfs on top, mounted in a private mount namespace, so
# nothing written reaches the machine and everything vanishes with the namespace. pacman
# runs with --sysroot on it: it chroots into the root before anything else, so its
# database (/var/lib/pacman), its configuration (/etc/pacman.conf, written here) and its
# hook directory (/usr/share/libalpm/hooks) are the root's, and the hooks run in the same
# chroot as on a real Arch system. /dev, /proc and /sys are mounted inside for the
# compiler and kbuild. Debian's own dkms is taken out of the root; the toolchain that
# dkms-rs depends on is Debian's, declared to pacman with --assume-installed.
# Prints 'N passed, N failed'.
set -u -o pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

. tests/e2e/lib.sh

if [[ $(id -u) != 0 ]] || ! has_commands makepkg pacman; then
    echo "arch-packages.sh: needs root, makepkg and pacman (see .ci/install-deps)" >&2
    exit 2
fi
kernel=$(newest_headers '6.1.*-amd64' -v cloud rt)
cloud=$(newest_headers '6.1.*-cloud-amd64')
headers_only=$(newest_headers '6.12.*-amd64')
cloud_deb=$(ls /var/cache/dkms-rs-test/debs/linux-image-"$cloud"_*.deb 2>/dev/null | head -n 1)
if [[ ! -d /lib/modules/$kernel/kernel || -z $cloud || -z $headers_only || -z $cloud_deb ]]; then
    echo "arch-packages.sh: needs the 6.1 image and headers, the cloud headers and image .deb, the 6.12 headers (see .ci/install-deps)" >&2
    exit 2
fi

work=$(mktemp -d /tmp/arch-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/pkgs"

chown nobody "$work/pkgs"
ours=$(scripts/package arch 2>"$work/package.log" | tail -n 1)
check "scripts/package arch built $(basename "$ours")" test -f "$ours"
makepkg_as_nobody tests/e2e/arch/dkms-hello
check "makepkg built dkms-hello 1.0" test -f "$work/pkgs/dkms-hello-1.0-1-any.pkg.tar.zst"
sed 's/^pkgver=1.0$/pkgver=2.0/' tests/e2e/arch/dkms-hello/PKGBUILD > "$work/PKGBUILD.2"
mkdir -p "$work/hello-2" && cp tests/e2e/arch/dkms-hello/* "$work/hello-2/" && cp "$work/PKGBUILD.2" "$work/hello-2/PKGBUILD"
makepkg_as_nobody "$work/hello-2"
check "makepkg built dkms-hello 2.0" test -f "$work/pkgs/dkms-hello-2.0-1-any.pkg.tar.zst"
makepkg_as_nobody tests/e2e/arch/dkms-broken
check "makepkg built dkms-broken" test -f "$work/pkgs/dkms-broken-0.1-1-any.pkg.tar.zst"
mkdir -p "$work/image" && dpkg-deb -x "$cloud_deb" "$work/image"
makepkg_as_nobody tests/e2e/arch/linux-cloud KERNEL="$cloud" IMAGE_ROOT="$work/image"
cloud_pkgs=$(ls "$work"/pkgs/linux-cloud-*.pkg.tar.zst 2>/dev/null | tr '\n' ' ')
check "makepkg built linux-cloud and linux-cloud-headers" test "$(wc -w <<< "$cloud_pkgs")" -eq 2
cp "$ours" "$work/pkgs/"
# A package scaffolded from bare sources (a Kbuild, a source file, a VERSION): 1.0, then
# 1.1 from the same sources with VERSION raised.
mkdir -p "$work/greet"
cp tests/fixtures/modules/patched-1.0/fx_patched.c "$work/greet/greet.c"
echo 'obj-m := greet.o' > "$work/greet/Kbuild"
for v in 1.0 1.1; do
    echo "$v" > "$work/greet/VERSION"
    target/release/dkms scaffold "$work/greet" --pkgbuild --force > "$work/scaffold-$v.log" 2>&1
    check "dkms scaffold --pkgbuild $v" test $? -eq 0
    makepkg_as_nobody "$work/greet/dkms-greet"
    check "makepkg built the scaffolded dkms-greet $v" test -f "$work/pkgs/dkms-greet-$v-1-any.pkg.tar.zst"
done

# Everything below runs in the private mount namespace (the function is exported to it).
in_root() {
    set -u -o pipefail
    mount --make-rprivate /
    root=$(overlay_root root)
    # The root: one kernel with headers and modules (kernel), one with headers only, no
    # dkms but ours to come, no module source and no dkms state.
    for d in "$root"/usr/lib/modules/*; do
        case ${d##*/} in
            "$kernel") ;;
            "$headers_only") rm -rf "$d"/kernel "$d"/modules.* ;;
            *) rm -rf "$d" ;;
        esac
    done
    dpkg -L dkms | while read -r f; do [[ -f $root$f || -L $root$f ]] && rm -f "$root$f"; done
    for d in "$root"/usr/src/*/; do [[ -f $d/dkms.conf ]] && rm -rf "$d"; done
    find "$root"/var/lib/dkms -mindepth 1 -maxdepth 1 ! -name 'mok.*' -exec rm -rf {} +
    rm -rf "$root"/var/lib/pacman && mkdir -p "$root"/var/lib/pacman "$root"/var/cache/pacman/pkg "$root/pkgs"
    printf '[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n' > "$root/etc/pacman.conf"
    cp "$work"/pkgs/*.pkg.tar.zst "$root/pkgs/"
    # Stands where mkinitcpio's 90-mkinitcpio-install.hook stands, and notes which hello
    # modules an initramfs made there would find.
    mkdir -p "$root/etc/pacman.d/hooks"
    printf '%s\n' '[Trigger]' 'Operation = Install' 'Operation = Upgrade' 'Type = Path' \
        'Target = usr/src/*/dkms.conf' '[Action]' 'Description = What a hook at 90 sees' \
        'When = PostTransaction' \
        "Exec = /bin/sh -c 'find /usr/lib/modules -name \"hello.ko*\" > /root/seen-at-90'" \
        > "$root/etc/pacman.d/hooks/90-initramfs-probe.hook"
    run_steps
}

pac() { # log name, pacman arguments...
    local log=$work/$1.log
    shift
    pacman --sysroot "$root" --noconfirm "$@" > "$log" 2>&1
}
dkms_in_root() { chroot "$root" /usr/bin/dkms "$@"; }
module_file() { # kernel: the installed hello module, wherever the distribution puts it
    find "$root/usr/lib/modules/$1" -name 'hello.ko*' 2>/dev/null | head -n 1
}

run_steps() {
    pac ours -U --assume-installed bash --assume-installed kmod --assume-installed gcc \
        --assume-installed make --assume-installed patch --assume-installed openssl \
        "/pkgs/$(basename "$ours")"
    check "pacman -U $(basename "$ours")" test $? -eq 0
    check "pacman knows dkms-rs as the provider of dkms" bash -c \
        "pacman --sysroot '$root' -Qo /usr/bin/dkms | grep -q 'is owned by dkms-rs' && pacman --sysroot '$root' -T dkms >/dev/null"
    check "/etc/dkms/framework.conf is a backup file of ours" bash -c \
        "pacman --sysroot '$root' -Qii dkms-rs | grep -q 'UNMODIFIED.*/etc/dkms/framework.conf\|/etc/dkms/framework.conf.*UNMODIFIED'"

    # 1. The source package arrives.
    pac hello-1 -U /pkgs/dkms-hello-1.0-1-any.pkg.tar.zst
    check "pacman -U dkms-hello 1.0" test $? -eq 0
    check "its hook ran dkms install for $kernel" grep -qx "==> dkms install --no-depmod hello/1.0 -k $kernel" "$work/hello-1.log"
    check "dkms status: hello/1.0 installed for $kernel" test "$(dkms_in_root status hello)" = "hello/1.0, $kernel, x86_64: installed"
    local f
    f=$(module_file "$kernel")
    check "the module is in $kernel's tree (${f#"$root"})" test -n "$f"
    check "its vermagic names $kernel" bash -c "modinfo -F vermagic '$f' | grep -q '^$kernel '"
    check "its version is 1.0" test "$(modinfo -F version "$f")" = 1.0
    local signer
    signer=$(openssl x509 -inform DER -in "$root/var/lib/dkms/mok.pub" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p')
    check "it is signed with the dkms key ($signer)" test "$(modinfo -F signer "$f")" = "$signer"
    check "depmod indexed it" grep -q "/hello.ko" "$root/usr/lib/modules/$kernel/modules.dep"
    check "a hook at 90 (mkinitcpio's place) runs after ours and finds the module" \
        test "$(cat "$root/root/seen-at-90")" = "${f#"$root"}"
    check "the headers-only kernel is reported, not built" grep -qx \
        "==> Unable to install module hello/1.0 for kernel $headers_only: Missing kernel modules tree." "$work/hello-1.log"

    # 2. Version 2.0 replaces it.
    pac hello-2 -U /pkgs/dkms-hello-2.0-1-any.pkg.tar.zst
    check "pacman -U dkms-hello 2.0" test $? -eq 0
    check "its remove hook ran before the transaction" grep -qx "==> dkms remove --no-depmod hello/1.0 -k $kernel" "$work/hello-2.log"
    check "dkms status: only hello/2.0, installed" test "$(dkms_in_root status hello)" = "hello/2.0, $kernel, x86_64: installed"
    check "no state of 1.0 left" test ! -e "$root/var/lib/dkms/hello/1.0"
    check "no source of 1.0 left" test ! -e "$root/usr/src/hello-1.0"
    f=$(module_file "$kernel")
    check "the installed module is 2.0" test "$(modinfo -F version "$f")" = 2.0

    # 3. A new kernel and its headers, in one transaction as `pacman -S linux-cloud
    # linux-cloud-headers` would install them.
    pac cloud -U $(cd "$root" && ls pkgs/linux-cloud-*.pkg.tar.zst | sed 's|^|/|')
    check "pacman -U linux-cloud linux-cloud-headers" test $? -eq 0
    check "the hook built hello for $cloud" test "$(dkms_in_root status hello -k "$cloud")" = "hello/2.0, $cloud, x86_64: installed"
    f=$(module_file "$cloud")
    check "its vermagic names $cloud" bash -c "[[ -n '$f' ]] && modinfo -F vermagic '$f' | grep -q '^$cloud '"

    # 4. A broken dkms.conf: reported, the transaction completes, nothing in the tree.
    pac broken -U /pkgs/dkms-broken-0.1-1-any.pkg.tar.zst
    check "pacman -U dkms-broken completes" test $? -eq 0
    check "pacman has dkms-broken installed" bash -c "pacman --sysroot '$root' -Q dkms-broken >/dev/null"
    check "the hook names the file and the line" grep -q "^/usr/src/broken-0.1/dkms.conf:5: bash: unexpected EOF" "$work/broken.log"
    check "and the fix" grep -q "fix: correct the shell syntax on that line" "$work/broken.log"
    check "and reports the module at the end" grep -q "^==> Unable to install module broken/0.1 for kernel $kernel: its dkms.conf or its sources cannot be used (exit 8)." "$work/broken.log"
    check "nothing of it in the dkms tree" test ! -e "$root/var/lib/dkms/broken"
    pac broken-remove -R dkms-broken
    check "pacman -R dkms-broken" test $? -eq 0

    # Our package goes, the modules stay; back again, it sees them as it left them.
    local status_before
    status_before=$(dkms_in_root status)
    pac ours-remove -Rdd dkms-rs
    check "pacman -Rdd dkms-rs" test $? -eq 0
    check "the modules stay without it" test -n "$(module_file "$kernel")" -a -n "$(module_file "$cloud")"
    pac ours-again -U --assume-installed bash --assume-installed kmod --assume-installed gcc \
        --assume-installed make --assume-installed patch --assume-installed openssl \
        "/pkgs/$(basename "$ours")"
    check "reinstalled, dkms status is as before" test "$(dkms_in_root status)" = "$status_before"

    # 5. Removal.
    pac remove -R dkms-hello
    check "pacman -R dkms-hello" test $? -eq 0
    local left
    left=$(find "$root"/usr/lib/modules -name 'hello.ko*' 2>/dev/null)
    check "no module file left (${left:-none})" test -z "$left"
    check "no state left" test ! -e "$root/var/lib/dkms/hello"
    check "no source left" test ! -e "$root/usr/src/hello-2.0"
    check "depmod forgot it" bash -c "! grep -q hello.ko '$root'/usr/lib/modules/*/modules.dep"

    # 6. The scaffolded package: installed, upgraded, removed.
    pac greet-1 -U /pkgs/dkms-greet-1.0-1-any.pkg.tar.zst
    check "pacman -U the scaffolded dkms-greet 1.0" test $? -eq 0
    check "dkms status: greet/1.0 installed for $kernel" test "$(dkms_in_root status greet -k "$kernel")" = "greet/1.0, $kernel, x86_64: installed"
    check "its dkms.conf got the version from pkgver" grep -qx 'PACKAGE_VERSION="1.0"' "$root/usr/src/greet-1.0/dkms.conf"
    pac greet-2 -U /pkgs/dkms-greet-1.1-1-any.pkg.tar.zst
    check "pacman -U dkms-greet 1.1" test $? -eq 0
    check "dkms status: only greet/1.1, installed" test "$(dkms_in_root status greet -k "$kernel")" = "greet/1.1, $kernel, x86_64: installed"
    check "no state of greet 1.0 left" test ! -e "$root/var/lib/dkms/greet/1.0"
    pac greet-remove -R dkms-greet
    check "pacman -R dkms-greet" test $? -eq 0
    check "nothing of greet left" bash -c "! ls -d '$root'/var/lib/dkms/greet '$root'/usr/src/greet-* 2>/dev/null | grep -q . && test -z \"\$(find '$root'/usr/lib/modules -name 'greet.ko*')\""
    echo "$passed passed, $failed failed" > "$work/result"
    for log in "$work"/*.log; do
        [[ $failed == 0 ]] || { echo "--- ${log##*/}"; cat "$log"; }
    done
    [[ $failed == 0 ]]
}

export work kernel cloud headers_only ours passed failed
export -f in_root run_steps check pac dkms_in_root module_file overlay_root
unshare -m bash -c in_root
rc=$?
cat "$work/result" 2>/dev/null || echo "$passed passed, $failed failed (the namespace did not finish)"
exit $rc
