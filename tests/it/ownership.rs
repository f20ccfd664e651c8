//! The install records: `dkms owner`, `dkms verify`, and an uninstall that meets a module
//! changed since its install.

use crate::common::{self, Needs};

use common::Root;
use dkms::exit;

/// patched/1.0 installed on the 6.1 headers, over a kernel module of the same name in
/// `extra/` (archived while ours is installed).
fn installed() -> Option<(Root, String)> {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return None;
    }
    let root = Root::new();
    let k = common::headers("6.1");
    root.real_kernel(&k).fixture("patched-1.0");
    let original = root.install_tree().join(&k).join("extra/fx_patched.ko");
    std::fs::create_dir_all(original.parent().unwrap()).unwrap();
    std::fs::write(&original, b"the kernel's own module").unwrap();
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    Some((root, k))
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn owner_names_the_module_that_placed_each_path() {
    let Some((root, k)) = installed() else { return };
    let module = format!("$ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko");
    let archived = format!("$ROOT/var/lib/dkms/patched/original_module/{k}/x86_64/fx_patched.ko");
    let fill = |t: &str| t.replace("$ROOT", &root.path().display().to_string());
    root.dkms(&["owner", &fill(&module), &fill(&archived)]).is(
        &root,
        exit::SUCCESS,
        &format!("patched/1.0, {k}, x86_64: {module}\npatched/1.0, {k}, x86_64: {archived}\n"),
        "",
    );
    // Not placed by dkms, inside and outside the trees, and no path at all.
    let unowned = format!("$ROOT/lib/modules/{k}/updates/dkms/other.ko");
    root.dkms(&["owner", &fill(&unowned), "/etc/passwd"]).is(
        &root,
        exit::NOT_OWNED,
        "",
        &format!("dkms: no installed module placed {unowned}\ndkms: /etc/passwd is outside the install tree ($ROOT/lib/modules) and the dkms tree ($ROOT/var/lib/dkms): dkms places no files there\n"),
    );
    root.dkms(&["owner"]).is(
        &root,
        exit::NO_PATHS,
        "",
        "\nError! Which paths? Usage: dkms owner PATH...\n",
    );
    // Uninstalled: nothing is owned any more.
    root.dkms(&["uninstall", "patched/1.0", "-k", &k]).ok();
    assert_eq!(root.dkms(&["owner", &fill(&module)]).code, exit::NOT_OWNED);
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn verify_reports_modified_missing_and_stray_files() {
    let Some((root, k)) = installed() else { return };
    let dir = root.install_tree().join(&k).join("updates/dkms");
    root.dkms(&["verify"]).is(
        &root,
        exit::SUCCESS,
        "2 file(s) of 1 installed module version(s) checked: 0 missing, 0 modified, 0 stray.\n",
        "",
    );
    std::fs::write(dir.join("fx_patched.ko"), b"changed by hand").unwrap();
    std::fs::write(dir.join("left-behind.ko.xz"), b"nobody's").unwrap();
    let archived = root
        .dkms_tree()
        .join(format!("patched/original_module/{k}/x86_64/fx_patched.ko"));
    std::fs::remove_file(&archived).unwrap();
    root.dkms(&["verify"]).is(
        &root,
        exit::VERIFY_FAILED,
        &format!(
            "patched/1.0, {k}, x86_64: missing $ROOT/var/lib/dkms/patched/original_module/{k}/x86_64/fx_patched.ko\n\
             patched/1.0, {k}, x86_64: modified $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko\n\
             stray: $ROOT/lib/modules/{k}/updates/dkms/left-behind.ko.xz\n\
             2 file(s) of 1 installed module version(s) checked: 1 missing, 1 modified, 1 stray.\n"
        ),
        "",
    );
    // Asked about one module, strays belong to no module and are not looked for.
    assert_eq!(
        root.dkms(&["verify", "patched/1.0", "-k", &k])
            .stdout
            .lines()
            .count(),
        3
    );
    let json: serde_json::Value =
        serde_json::from_str(&root.dkms(&["verify", "--json"]).stdout).unwrap();
    assert_eq!(json["schema"], "dkms-status/1");
    let entry = &json["entries"][0];
    assert_eq!(
        (&entry["module"], &entry["state"], &entry["recorded"]),
        (&"patched".into(), &"installed".into(), &true.into())
    );
    let checks: Vec<(&str, &str)> = entry["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f["check"].as_str().unwrap()))
        .collect();
    assert_eq!(checks, [("original", "missing"), ("module", "modified")]);
    assert_eq!(
        json["stray"][0],
        dir.join("left-behind.ko.xz").display().to_string()
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_module_changed_since_its_install_is_kept_aside_and_never_blocks_a_reinstall() {
    let Some((root, k)) = installed() else { return };
    let module = root
        .install_tree()
        .join(&k)
        .join("updates/dkms/fx_patched.ko");
    let kept = |n: &str| {
        root.dkms_tree().join(format!(
            ".kept/patched/1.0/{k}/x86_64/updates/dkms/fx_patched.ko{n}"
        ))
    };
    let warning = |n: &str| {
        format!("Warning: $ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko was changed after dkms installed it (its size or SHA-256 differs from the install record): it is moved to {} so that nothing of yours is lost and the module can be installed again. 'dkms verify' lists the files kept this way; delete them when you no longer need them.\n", kept(n).display())
    };
    // Re-signed by its user, then the same version removed and installed again, as a
    // Debian package upgrade does (remove, then install).
    std::fs::write(&module, b"re-signed by its user").unwrap();
    let out = root.dkms(&["remove", "patched/1.0", "--all"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            0,
            warning("")
                .replace("$ROOT", &root.path().display().to_string())
                .as_str()
        )
    );
    assert_eq!(std::fs::read(kept("")).unwrap(), b"re-signed by its user");
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed (Original modules exist)\n")
    );
    // The same thing twice keeps both, under names of their own.
    std::fs::write(&module, b"re-signed again").unwrap();
    let out = root.dkms(&["uninstall", "patched/1.0", "-k", &k]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stderr,
        warning(".1").replace("$ROOT", &root.path().display().to_string())
    );
    assert_eq!(std::fs::read(kept(".1")).unwrap(), b"re-signed again");
    assert!(!module.exists());
    let out = root.dkms(&["verify"]);
    assert_eq!(out.code, exit::SUCCESS);
    // The time of the uninstall varies; everything before it is checked whole.
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    for (line, n) in lines.iter().zip(["", ".1"]) {
        assert!(line.starts_with(&format!(
            "kept: {} (was {}, patched/1.0, {k}, x86_64; changed after its install, set aside by the uninstall of ",
            kept(n).display(),
            module.display()
        )), "{line}");
    }
    assert_eq!(
        lines[2],
        "0 file(s) of 0 installed module version(s) checked: 0 missing, 0 modified, 0 stray."
    );
    let json: serde_json::Value =
        serde_json::from_str(&root.dkms(&["verify", "--json"]).stdout).unwrap();
    assert_eq!(json["kept"][1]["kept"], kept(".1").display().to_string());
    assert_eq!(json["kept"][1]["from"], module.display().to_string());
    assert_eq!(json["kept"][1]["module"], "patched");
    // The record on disk holds the path as the root sees it.
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}.kept.json", kept(".1").display())).unwrap(),
    )
    .unwrap();
    assert_eq!(
        record["from"],
        format!("/lib/modules/{k}/updates/dkms/fx_patched.ko")
    );
}

#[test]
#[cfg_attr(
    not(all(dkms_host_headers_6_1, dkms_host_debian_dkms)),
    ignore = "needs Debian's 6.1 kernel headers, Debian's bash dkms (.ci/install-deps)"
)]
fn a_module_the_original_installed_has_no_record_and_is_not_stray() {
    if !common::host_ready(&[Needs::Headers("6.1"), Needs::DebianDkms]) {
        return;
    }
    let root = Root::new();
    let k = common::headers("6.1");
    root.real_kernel(&k).fixture("patched-1.0");
    root.bash_dkms(&["install", "patched/1.0", "-k", &k]).ok();
    root.dkms(&["verify"]).is(
        &root,
        exit::SUCCESS,
        &format!(
            "patched/1.0, {k}, x86_64: no record (installed by a dkms that keeps none): not checked\n\
             0 file(s) of 1 installed module version(s) checked: 0 missing, 0 modified, 0 stray.\n"
        ),
        "",
    );
}

/// A Debian package that ships `path` (relative to the root), installed into `root`'s own
/// dpkg database by real dpkg.
fn dpkg_install_into(root: &Root, name: &str, path: &str, bytes: &[u8]) {
    let stage = tempfile::tempdir().unwrap();
    let file = stage.path().join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, bytes).unwrap();
    std::fs::create_dir_all(stage.path().join("DEBIAN")).unwrap();
    std::fs::write(
        stage.path().join("DEBIAN/control"),
        format!("Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: test <t@t>\nDescription: prebuilt module\n"),
    )
    .unwrap();
    let deb = stage.path().with_extension("deb");
    let built = std::process::Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(stage.path())
        .arg(&deb)
        .output()
        .unwrap();
    assert!(built.status.success(), "{built:?}");
    let admin = root.path().join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(d)).unwrap();
    }
    for f in ["status", "available"] {
        std::fs::write(admin.join(f), "").unwrap();
    }
    let installed = std::process::Command::new("dpkg")
        .arg(format!("--root={}", root.path().display()))
        .args([
            "--log=/dev/null",
            "--force-script-chrootless",
            "--force-overwrite",
            "-i",
        ])
        .arg(&deb)
        .output()
        .unwrap();
    assert!(installed.status.success(), "{installed:?}");
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_module_file_a_package_owns_is_neither_replaced_nor_deleted() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let root = Root::new();
    let k = common::headers("6.1");
    root.real_kernel(&k).fixture("patched-1.0");
    let rel = format!("lib/modules/{k}/updates/dkms/fx_patched.ko");
    dpkg_install_into(&root, "patched-modules", &rel, b"the package's module");
    root.dkms(&["build", "patched/1.0", "-k", &k]).ok();
    let refusal = format!(
        "\nError! $ROOT/{rel} belongs to the package patched-modules: dkms does not replace or delete another package's files.\nRemove that package first (apt remove patched-modules), or leave this module to it.\n"
    );
    root.dkms(&["install", "patched/1.0", "-k", &k])
        .is(&root, exit::INSTALL_FAILED, "", &refusal);
    assert_eq!(
        std::fs::read(root.path().join(&rel)).unwrap(),
        b"the package's module"
    );
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: built\n")
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn uninstall_refuses_a_module_file_a_package_took_over() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let root = Root::new();
    let k = common::headers("6.1");
    root.real_kernel(&k).fixture("patched-1.0");
    root.dkms(&["install", "patched/1.0", "-k", &k]).ok();
    let rel = format!("lib/modules/{k}/updates/dkms/fx_patched.ko");
    dpkg_install_into(&root, "patched-modules", &rel, b"the package's module");
    let out = root.dkms(&["uninstall", "patched/1.0", "-k", &k]);
    out.is(
        &root,
        exit::INSTALL_FAILED,
        &format!("Module patched/1.0 for kernel {k} (x86_64):\n"),
        &format!("\nError! $ROOT/{rel} belongs to the package patched-modules: dkms does not replace or delete another package's files.\nRemove that package first (apt remove patched-modules), or leave this module to it.\n"),
    );
    assert_eq!(
        std::fs::read(root.path().join(&rel)).unwrap(),
        b"the package's module"
    );
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed (Differences between built and installed modules)\n")
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn a_root_copied_elsewhere_verifies_its_own_files() {
    let Some((root, k)) = installed() else { return };
    let record = root
        .dkms_tree()
        .join(format!("patched/1.0/{k}/x86_64/.installed-files.json"));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(written["schema"], "dkms-files/2");
    assert_eq!(
        written["files"][1]["path"],
        format!("/lib/modules/{k}/updates/dkms/fx_patched.ko")
    );
    // An image build: the root is copied, and the place it was built in is gone.
    let copy = Root::new();
    common::copy_dir(&root.path().join("."), copy.path());
    drop(root);
    let module = format!("$ROOT/lib/modules/{k}/updates/dkms/fx_patched.ko");
    copy.dkms(&["verify"]).is(
        &copy,
        exit::SUCCESS,
        "2 file(s) of 1 installed module version(s) checked: 0 missing, 0 modified, 0 stray.\n",
        "",
    );
    // Its source link moved with it.
    assert_eq!(
        copy.dkms(&["status"]).stdout,
        format!("patched/1.0, {k}, x86_64: installed (Original modules exist)\n")
    );
    copy.dkms(&[
        "owner",
        &module.replace("$ROOT", &copy.path().display().to_string()),
    ])
    .is(
        &copy,
        exit::SUCCESS,
        &format!("patched/1.0, {k}, x86_64: {module}\n"),
        "",
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn records_of_the_first_schema_with_another_roots_paths_are_read() {
    let Some((root, k)) = installed() else { return };
    let record = root
        .dkms_tree()
        .join(format!("patched/1.0/{k}/x86_64/.installed-files.json"));
    // As the first schema wrote it in a root that was then at /srv/image.
    let text = std::fs::read_to_string(&record)
        .unwrap()
        .replace("dkms-files/2", "dkms-files/1")
        .replace("\"/lib/modules/", "\"/srv/image/lib/modules/")
        .replace("\"/var/lib/dkms/", "\"/srv/image/var/lib/dkms/");
    std::fs::write(&record, text).unwrap();
    root.dkms(&["verify"]).is(
        &root,
        exit::SUCCESS,
        "2 file(s) of 1 installed module version(s) checked: 0 missing, 0 modified, 0 stray.\n",
        "",
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn verify_and_owner_answer_for_what_they_are_asked() {
    let Some((root, k)) = installed() else { return };
    let dir = root.install_tree().join(&k).join("updates/dkms");
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    std::fs::write(dir.join("nested/deeper.ko.zst"), b"nobody's").unwrap();
    root.dkms(&["verify"]).is(
        &root,
        exit::VERIFY_FAILED,
        &format!("stray: $ROOT/lib/modules/{k}/updates/dkms/nested/deeper.ko.zst\n2 file(s) of 1 installed module version(s) checked: 0 missing, 0 modified, 1 stray.\n"),
        "",
    );
    root.dkms(&["verify", "nosuch"]).is(
        &root,
        exit::NOT_ADDED,
        "",
        "\nError! The module nosuch is not located in the DKMS tree.\n",
    );
    root.dkms(&["verify", "patched/9.9"]).is(
        &root,
        exit::NOT_ADDED,
        "",
        "\nError! The module/version combo: patched-9.9 is not located in the DKMS tree.\n",
    );
    root.dkms(&["owner", &dir.display().to_string()]).is(
        &root,
        exit::NOT_OWNED,
        "",
        &format!("dkms: $ROOT/lib/modules/{k}/updates/dkms is a directory: dkms owner answers for the files an install placed (modules, archived originals), not for directories\n"),
    );
}
