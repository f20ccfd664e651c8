#!/bin/bash
# Boot Debian's signed kernel under OVMF with Secure Boot on, run our dkms inside it, and
# try to load a module: the proof that `dkms secureboot` tells the truth.
#
#   secureboot-guest.sh --kernel-image /boot/vmlinuz-K --dkms target/release/dkms \
#       --cert mok.pub --module m.ko --mode not-enrolled|pending|enrolled --out DIR
#
# The firmware's variables are made with the distribution's tools: virt-fw-vars puts
# the kernel image's own signer (read with sbattach and openssl) in db, and, for
# "enrolled", the certificate in MokListRT (the MOK list as shim leaves it for the
# kernel, which loads it into its keyring). For "pending", mokutil itself runs inside the
# guest (`mokutil --import`), as a user would, before our dkms looks. The guest's init
# (busybox) writes into DIR: secureboot.json (`dkms secureboot --json`), proc-keys.txt,
# insmod.txt (its exit status) and the serial console log.
# Exit 0 when the guest reported, 2 on a setup error, 3 when it did not finish.
set -u -o pipefail
die() { echo "secureboot-guest: $*" >&2; exit 2; }
image="" dkms="" cert="" module="" mode="" out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --kernel-image) image=$2; shift 2 ;;
        --dkms) dkms=$2; shift 2 ;;
        --cert) cert=$2; shift 2 ;;
        --module) module=$2; shift 2 ;;
        --mode) mode=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
for f in "$image" "$dkms" "$cert" "$module"; do [ -f "$f" ] || die "missing file '$f'"; done
case "$mode" in not-enrolled|pending|enrolled) ;; *) die "--mode not-enrolled|pending|enrolled" ;; esac
mkdir -p "$out" || die "cannot create $out"
code=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
vars=/usr/share/OVMF/OVMF_VARS_4M.ms.fd
for t in qemu-system-x86_64 virt-fw-vars sbattach openssl cpio busybox mokutil; do
    command -v "$t" >/dev/null || die "$t is not installed (see .ci/install-deps)"
done
work=$(mktemp -d /tmp/sb-guest.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The certificate in DER (what the kernel and mokutil read).
openssl x509 -in "$cert" -inform DER -out "$work/cert.der" -outform DER 2>/dev/null ||
    openssl x509 -in "$cert" -inform PEM -out "$work/cert.der" -outform DER || die "not a certificate: $cert"

# db: OVMF's Microsoft keys plus whoever signed the kernel image (Debian's key).
sbattach --detach "$work/image.p7" "$image" >/dev/null || die "the kernel image carries no Authenticode signature"
openssl pkcs7 -inform DER -in "$work/image.p7" -print_certs -out "$work/image-certs.pem" || die "cannot read the image's signature"
args=()
n=0
while IFS= read -r line; do
    [ "$line" = "-----BEGIN CERTIFICATE-----" ] && { n=$((n + 1)); : > "$work/signer-$n.pem"; }
    [ "$n" -gt 0 ] && echo "$line" >> "$work/signer-$n.pem"
done < "$work/image-certs.pem"
for f in "$work"/signer-*.pem; do args+=(--add-db "$(cat /proc/sys/kernel/random/uuid)" "$f"); done
if [ "$mode" = enrolled ]; then
    # virt-fw-vars writes the list as MokList (what shim reads); the kernel reads the
    # runtime copy shim makes of it, MokListRT: the same value under that name.
    virt-fw-vars -i "$vars" --add-mok 605dab50-e046-4300-abb6-3dd810dd8b23 "$work/cert.der" \
        --output-json "$work/mok.json" >"$work/vfw-mok.log" 2>&1 || die "virt-fw-vars failed: $(cat "$work/vfw-mok.log")"
    python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
mok = [v for v in doc["variables"] if v["name"] == "MokList"][0]
json.dump({"version": 2, "variables": [dict(mok, name="MokListRT", attr=7)]}, open(sys.argv[2], "w"))
' "$work/mok.json" "$work/mokrt.json" || die "cannot make MokListRT"
    args+=(--set-json "$work/mokrt.json")
fi
virt-fw-vars -i "$vars" "${args[@]}" -o "$work/vars.fd" >"$work/vfw.log" 2>&1 || die "virt-fw-vars failed: $(cat "$work/vfw.log")"

# The guest: busybox, our dkms with the libraries it links, mokutil with its own, the
# certificate where dkms looks for it, and the module.
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,etc,tmp,var/lib/dkms,out} || die "mkdir"
cp "$(command -v busybox)" "$root/bin/busybox"
cp /etc/os-release "$root/etc/os-release"
cp "$dkms" "$root/bin/dkms"
cp "$(command -v mokutil)" "$root/bin/mokutil"
for bin in "$dkms" "$(command -v mokutil)"; do
    ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
        mkdir -p "$root$(dirname "$lib")" && cp -L "$lib" "$root$lib"
    done
done
cp "$work/cert.der" "$root/var/lib/dkms/mok.pub"
cp "$module" "$root/module.ko"
# efivarfs is a module in Debian's kernel (signed by Debian: it loads under lockdown).
efivarfs=$(find "/lib/modules/$(basename "$image" | sed 's/^vmlinuz-//')/kernel/fs/efivarfs" -name 'efivarfs.ko*' 2>/dev/null | head -n 1)
[ -n "$efivarfs" ] && cp "$efivarfs" "$root/efivarfs.ko"
cat > "$root/init" <<'EOF'
#!/bin/busybox sh
B=/bin/busybox
$B mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
[ -f /efivarfs.ko ] && $B insmod /efivarfs.ko
$B mount -t efivarfs efivarfs /sys/firmware/efi/efivars
$B mount -t tmpfs tmpfs /tmp
echo "SBGUEST: kernel=$($B uname -r)"
if [ -f /mode-pending ]; then
    /bin/mokutil --generate-hash=dkms-test > /tmp/pw.hash
    /bin/mokutil --import /var/lib/dkms/mok.pub --hash-file /tmp/pw.hash
    echo "SBGUEST: mokutil_rc=$?"
fi
echo "SBGUEST: secureboot-begin"
/bin/dkms secureboot --json
echo "SBGUEST: secureboot-end rc=$?"
echo "SBGUEST: keys-begin"
$B cat /proc/keys
echo "SBGUEST: keys-end"
$B insmod /module.ko
echo "SBGUEST: insmod_rc=$?"
$B dmesg | $B grep -iE 'x\.509|module|key|secure boot|lockdown'
echo "SBGUEST: done"
$B sync
$B poweroff -f
EOF
chmod 755 "$root/init"
[ "$mode" = pending ] && touch "$root/mode-pending"
(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet > "$work/initramfs.cpio") || die "cpio failed"

for attempt in 1 2; do
    cp "$work/vars.fd" "$work/vars-run.fd"
    timeout --foreground -k 5 300 qemu-system-x86_64 -machine q35,smm=on,accel=tcg \
        -global driver=cfi.pflash01,property=secure,value=on \
        -drive "if=pflash,format=raw,unit=0,file=$code,readonly=on" \
        -drive "if=pflash,format=raw,unit=1,file=$work/vars-run.fd" \
        -cpu max -smp 1 -m 1024 -nodefaults -display none -no-reboot -monitor none \
        -serial "file:$work/serial.log" -kernel "$image" -initrd "$work/initramfs.cpio" \
        -append "console=ttyS0 panic=-1 no_timer_check quiet loglevel=3" > "$work/qemu.out" 2>&1
    tr -d '\r' < "$work/serial.log" > "$out/serial.txt"
    grep -q '^SBGUEST: done' "$out/serial.txt" && break
done
grep -q '^SBGUEST: done' "$out/serial.txt" || { tail -30 "$out/serial.txt" >&2; cat "$work/qemu.out" >&2; exit 3; }
sed -n '/^SBGUEST: secureboot-begin/,/^SBGUEST: secureboot-end/p' "$out/serial.txt" | sed '1d;$d' > "$out/secureboot.json"
sed -n '/^SBGUEST: keys-begin/,/^SBGUEST: keys-end/p' "$out/serial.txt" | sed '1d;$d' > "$out/proc-keys.txt"
sed -n 's/^SBGUEST: insmod_rc=//p' "$out/serial.txt" > "$out/insmod.txt"
sed -n 's/^SBGUEST: mokutil_rc=//p' "$out/serial.txt" > "$out/mokutil.txt"
exit 0
