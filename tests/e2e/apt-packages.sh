#!/bin/bash
# End to end through Debian's own packaging, on this (throwaway) machine itself: a module
# installed by Debian's dkms; our package (scripts/package deb) installed by apt in its
# place keeps it, then
#   1. `apt-get install` of real *-dkms packages builds and installs their modules for
#      every installed kernel with headers (through common.postinst);
#   2. installing another linux-headers package builds them for it (through the
#      /etc/kernel/header_postinst.d hook);
#   3. `apt-get remove --purge` removes every file we installed;
#   4. a package whose module does not build on one kernel (dm-writeboost on 6.12) is
#      installed for the others, and its configuration fails (common.postinst exits with
#      the failed build's status), as with Debian's and upstream's dkms;
#   5. a Debian source package made by `dkms scaffold --debian` from a module's bare
#      sources builds with dpkg-buildpackage (dh-dkms) and installs and removes through
#      apt-get;
# and `apt-get install dkms` puts Debian's back at the end, keeping every module; the
# machine is restored whatever happens.
#
# Why the CI machine and not a debootstrap chroot: a chroot needs minutes of bootstrap
# plus the toolchain and headers inside it, for the same packaging paths. This runs after
# `cargo test` (whose side-by-side tests need Debian's dkms as /usr/sbin/dkms) and
# restores the machine on exit. Prints 'N passed, N failed'.
set -u -o pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive

packages=bbswitch-dkms
kept_package=acpi-call-dkms
kept=acpi-call
failing_package=dm-writeboost-dkms
extra_headers=linux-headers-rt-amd64
. tests/e2e/lib.sh

# A signing key made during the test is removed again; an existing one is kept.
had_key=$([ -e /var/lib/dkms/mok.key ] && echo yes)
cleanup() {
    # A run killed mid-configuration leaves dpkg interrupted: finish it first.
    dpkg --configure -a >/dev/null 2>&1
    [ -n "$had_key" ] || rm -f /var/lib/dkms/mok.key /var/lib/dkms/mok.pub
    apt-get remove --purge -y -qq $packages "$failing_package" "$kept_package" >/dev/null 2>&1
    apt-get remove --purge -y -qq "$extra_headers" 'linux-headers-*-rt-amd64' >/dev/null 2>&1
    rm -f /etc/dkms/framework.conf.d/90-e2e.conf
    dpkg -s dkms >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends dkms >/dev/null 2>&1
    apt-get remove --purge -y -qq dkms-rs >/dev/null 2>&1
}
trap cleanup EXIT

if [[ $(id -u) != 0 ]] || ! dpkg -s dkms >/dev/null 2>&1; then
    echo "apt-packages.sh: needs root and Debian's dkms package (see .ci/install-deps)" >&2
    exit 2
fi
deb=$(scripts/package deb | tail -n 1)
check "scripts/package deb built $deb" test -f "$deb"

# A module Debian's dkms installed (for the newest kernel with headers, as its
# common.postinst does).
apt-get install -y -qq --no-install-recommends "$kept_package" > /tmp/e2e-kept.log 2>&1
check "Debian's dkms installs $kept_package" test $? -eq 0
status_before=$(dkms status "$kept")
check "Debian's dkms installed $kept (${status_before:-nothing})" bash -c "grep -q ': installed' <<< '$status_before'"

# Ours replaces Debian's through apt, keeping what it installed.
apt-get install -y -qq "$deb" > /tmp/e2e-switch.log 2>&1
check "apt-get install ./$(basename "$deb") replaces Debian's dkms" bash -c '[[ $(dkms --version) == dkms-3.4.3 && $(dpkg-query -W -f="${Status}" dkms) != *" installed" ]]'
check "the module Debian's dkms installed is still installed, status unchanged" test "$(dkms status "$kept")" = "$status_before"
check "$kept_package stays installed (its Depends: dkms is provided)" bash -c "dpkg -s $kept_package | grep -q '^Status: install ok installed'"
check "man dkms is ours" bash -c 'zcat /usr/share/man/man8/dkms.8.gz | head -n 1 | grep -q "(Rust)"'
check "framework.conf is a conffile of ours" bash -c 'dpkg-query -W -f="\${Conffiles}" dkms-rs | grep -q /etc/dkms/framework.conf'
mkdir -p /etc/dkms/framework.conf.d
# Build for every kernel with headers (Debian's common.postinst default is the running
# and the newest kernel; the running kernel of this machine has no headers).
echo "autoinstall_all_kernels=1" > /etc/dkms/framework.conf.d/90-e2e.conf

kernels=$(for d in /lib/modules/*/build/include; do [ -d "$d" ] && basename "$(dirname "$(dirname "$d")")"; done)
# Another dkms holds the lock (here flock(1) on the same file, for 5 seconds) while apt
# configures the packages: their builds wait for it, then proceed.
flock /var/lib/dkms/.lock sleep 5 &
holder=$!
sleep 0.5
apt-get install -y -qq --no-install-recommends $packages > /tmp/e2e-apt-install.log 2>&1
check "apt-get install $packages" test $? -eq 0
check "while another process held the lock, dkms waited for it" grep -q "Waiting for the dkms lock held by process $holder" /tmp/e2e-apt-install.log
wait $holder
# Our own package needs no lock to install: reinstalling it while another dkms holds the
# lock completes at once (its maintainer scripts run no dkms).
flock -o /var/lib/dkms/.lock sleep 60 &
holder=$!
sleep 0.5
timeout 50 apt-get install -y -qq --reinstall "$deb" > /tmp/e2e-reinstall.log 2>&1
check "reinstalling our package while the lock is held completes" test $? -eq 0
pkill -P $holder sleep
wait $holder 2>/dev/null
for k in $kernels; do
    check "bbswitch installed for $k" bash -c "dkms status bbswitch -k $k | grep -q ': installed'"
    f=$(ls /lib/modules/$k/updates/dkms/bbswitch.ko* 2>/dev/null | head -n 1)
    check "bbswitch for $k names its kernel in vermagic" bash -c "[[ -n '$f' ]] && modinfo -F vermagic '$f' | grep -q '^$k '"
done

# A new kernel's headers arrive: the hook builds every module for it.
apt-get install -y -qq --no-install-recommends "$extra_headers" > /tmp/e2e-headers.log 2>&1
check "apt-get install $extra_headers" test $? -eq 0
rt=$(newest_headers '*-rt-amd64')
for m in bbswitch "$kept"; do
    check "$m built and installed for the new kernel $rt by the hook" bash -c "dkms status $m -k $rt | grep -q ': installed'"
done

# Removal: nothing of ours is left.
apt-get remove --purge -y -qq $packages > /tmp/e2e-apt-remove.log 2>&1
check "apt-get remove --purge $packages" test $? -eq 0
left=$(find /lib/modules/*/updates/dkms -name 'bbswitch.ko*' 2>/dev/null)
check "no installed module file left (${left:-none})" test -z "$left"
check "no state left in /var/lib/dkms" bash -c '! ls -d /var/lib/dkms/bbswitch 2>/dev/null | grep -q .'

# A module that does not build for one kernel: the other kernels get it, the package's
# configuration fails and names the kernel, and the package can still be removed.
apt-get install -y -qq --no-install-recommends "$failing_package" > /tmp/e2e-failing.log 2>&1
check "apt-get install $failing_package fails its configuration" test $? -ne 0
check "common.postinst names the failed kernel" grep -q "Builds for the following kernel(s) failed:.*6\.12\." /tmp/e2e-failing.log
for k in $kernels; do
    case $k in
        6.12.*) check "dm-writeboost not installed for $k" bash -c "! dkms status dm-writeboost -k $k | grep -q ': installed'" ;;
        *) check "dm-writeboost installed for $k all the same" bash -c "dkms status dm-writeboost -k $k | grep -q ': installed'" ;;
    esac
done
apt-get remove --purge -y -qq "$failing_package" > /tmp/e2e-failing-remove.log 2>&1
check "apt-get remove --purge $failing_package" test $? -eq 0
check "no dm-writeboost state or module left" bash -c '! ls -d /var/lib/dkms/dm-writeboost /lib/modules/*/updates/dkms/dm-writeboost.ko* 2>/dev/null | grep -q .'

# A source package scaffolded from bare sources: built by dpkg-buildpackage with dh-dkms,
# installed and removed through apt.
apt-get install -y -qq --no-install-recommends debhelper dh-dkms > /tmp/e2e-dh.log 2>&1
scaffolded=$(mktemp -d /tmp/e2e-scaffold.XXXXXX)
mkdir -p "$scaffolded/greet"
cp tests/fixtures/modules/patched-1.0/fx_patched.c "$scaffolded/greet/greet.c"
echo 'obj-m := greet.o' > "$scaffolded/greet/Kbuild"
echo 1.0 > "$scaffolded/greet/VERSION"
dkms scaffold "$scaffolded/greet" --debian > /tmp/e2e-scaffold.log 2>&1
check "dkms scaffold --debian" test $? -eq 0
(cd "$scaffolded/greet" && dpkg-buildpackage -us -uc -b) > /tmp/e2e-dpkg-buildpackage.log 2>&1
check "dpkg-buildpackage built greet-dkms" test -f "$scaffolded/greet-dkms_1.0_all.deb"
apt-get install -y -qq "$scaffolded/greet-dkms_1.0_all.deb" > /tmp/e2e-greet.log 2>&1
check "apt-get install greet-dkms" test $? -eq 0
for k in $kernels; do
    case $k in
        6.12.*) ;;
        *) check "greet installed for $k" bash -c "dkms status greet -k $k | grep -q ': installed'" ;;
    esac
done
apt-get remove --purge -y -qq greet-dkms > /tmp/e2e-greet-remove.log 2>&1
check "apt-get remove --purge greet-dkms" test $? -eq 0
check "no greet state, source or module left" bash -c '! ls -d /var/lib/dkms/greet /usr/src/greet-1.0 /lib/modules/*/updates/dkms/greet.ko* 2>/dev/null | grep -q .'
rm -rf "$scaffolded"

# Back to Debian's dkms through apt: what ours installed stays installed.
status_ours=$(dkms status "$kept")
apt-get install -y -qq --no-install-recommends dkms > /tmp/e2e-switch-back.log 2>&1
check "apt-get install dkms brings Debian's dkms back" bash -c '[[ $(dkms --version) == dkms-3.0.10 ]] && ! dpkg -s dkms-rs 2>/dev/null | grep -q "ok installed"'
check "and Debian's dkms sees the module as ours left it" test "$(dkms status "$kept")" = "$status_ours"
cleanup
trap - EXIT
echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
