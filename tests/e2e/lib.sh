# Helpers of the end-to-end scripts (sourced): counted checks, makepkg as an unprivileged
# user, and throwaway roots.

# Whether every command named is installed.
has_commands() {
    local c
    for c in "$@"; do command -v "$c" >/dev/null || return 1; done
}

# The newest kernel whose headers match /usr/src/linux-headers-<glob>; "-v WORD..." leaves
# out names containing a WORD.
newest_headers() { # glob [-v word...]
    local glob=$1
    shift
    local names
    names=$(ls -d /usr/src/linux-headers-$glob 2>/dev/null | sed 's|.*/linux-headers-||')
    if [[ ${1:-} == -v ]]; then
        shift
        local w
        for w in "$@"; do names=$(grep -v -e "$w" <<< "$names"); done
    fi
    sort -V <<< "$names" | tail -n 1
}

passed=0
failed=0
check() { # description, command...
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok: $what"
    else
        failed=$((failed + 1))
        echo "FAILED: $what"
    fi
}

# makepkg refuses root: a PKGBUILD directory is built as nobody (as on a build machine),
# its packages written to $work/pkgs; extra arguments are environment for the PKGBUILD.
makepkg_as_nobody() { # PKGBUILD dir, NAME=value...
    local dir=$1 build
    shift
    build=$(mktemp -d "$work/build.XXXXXX")
    cp -r "$dir/." "$build/"
    chown -R nobody "$build"
    (cd "$build" && runuser -u nobody -- env HOME="$build" PKGDEST="$work/pkgs" PKGEXT=.pkg.tar.zst "$@" \
        makepkg --nodeps --force --noconfirm) > "$work/makepkg.log" 2>&1
}

# A throwaway root at $work/<name> (printed): an overlay of this machine's root with a
# tmpfs as its upper layer, /dev, /proc and /sys mounted inside. Call it in a private
# mount namespace: everything vanishes with it.
overlay_root() { # name
    local layer=$work/$1.layer root=$work/$1
    mkdir -p "$layer" "$root"
    mount -t tmpfs tmpfs "$layer"
    mkdir -p "$layer/upper" "$layer/work"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$layer/upper,workdir=$layer/work" "$root"
    mount --rbind /dev "$root/dev"
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    echo "$root"
}
