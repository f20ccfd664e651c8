//! `dkms status`: every state and suffix, filters, JSON, and side by side with Debian's
//! bash dkms on the same trees.

use crate::common::{self, Needs};

use common::{simple_conf, Root};

const K1: &str = "6.1.0-56-amd64";
const K2: &str = "6.12.117+deb12-amd64";
const A: &str = "x86_64";

/// A tree with one module in each state.
fn zoo() -> Root {
    let root = Root::new();
    root.fake_kernel(K1, "").fake_kernel(K2, "");
    root.source("added", "1.0", &simple_conf("added", "1.0"))
        .added("added", "1.0");
    root.source("inst", "2.0", &simple_conf("inst", "2.0"))
        .added("inst", "2.0")
        .built("inst", "2.0", K1, A, &["inst.ko"])
        .installed("inst", "2.0", K1, A)
        .built("inst", "2.0", K2, A, &["inst.ko.xz"]);
    root.source("orig", "1", &simple_conf("orig", "1"))
        .added("orig", "1")
        .built("orig", "1", K1, A, &["orig.ko"])
        .installed("orig", "1", K1, A)
        .original("orig", K1, A);
    // Two modules declared, one built copy missing.
    let two = "PACKAGE_NAME=two\nPACKAGE_VERSION=3\nBUILT_MODULE_NAME[0]=a\nBUILT_MODULE_NAME[1]=b\nDEST_MODULE_LOCATION[0]=/updates\nDEST_MODULE_LOCATION[1]=/updates\n";
    root.source("two", "3", two)
        .added("two", "3")
        .built("two", "3", K1, A, &["a.ko"]);
    // Installed copy changed behind our back.
    root.source("diff", "1", &simple_conf("diff", "1"))
        .added("diff", "1")
        .built("diff", "1", K2, A, &["diff.ko"])
        .installed("diff", "1", K2, A);
    root.write(
        &format!("lib/modules/{K2}/updates/dkms/diff.ko"),
        "tampered",
    );
    // Broken: the source directory vanished.
    root.source("gone", "1", &simple_conf("gone", "1"))
        .added("gone", "1");
    std::fs::remove_dir_all(root.source_tree().join("gone-1")).unwrap();
    // Noise the original ignores: stray files, non-kernel dirs, our dot-files.
    root.write("var/lib/dkms/mok.key", "k");
    root.write("var/lib/dkms/.lock", "1");
    std::fs::create_dir_all(root.dkms_tree().join("added/1.0/notakernel/x86_64/module")).unwrap();
    std::fs::create_dir_all(
        root.dkms_tree()
            .join(format!("inst/2.0/{K1}/.tmp_x86_64_abc/module")),
    )
    .unwrap();
    root
}

#[test]
fn every_state_and_suffix() {
    let root = zoo();
    let out = root.dkms(&["status"]);
    out.ok();
    insta::assert_snapshot!(out.stdout, @r"
    added/1.0: added
    diff/1, 6.12.117+deb12-amd64, x86_64: installed (Differences between built and installed modules)
    gone/1: broken
    inst/2.0, 6.1.0-56-amd64, x86_64: installed
    inst/2.0, 6.12.117+deb12-amd64, x86_64: built
    orig/1, 6.1.0-56-amd64, x86_64: installed (Original modules exist)
    two/3, 6.1.0-56-amd64, x86_64: built (Built modules are missing in the kernel modules folder)
    ");
    assert_eq!(
        out.stderr,
        "\nError! gone/1: Missing the module source directory or the symbolic link pointing to it.\nManual intervention is required!\n"
    );
}

#[test]
fn filters() {
    let root = zoo();
    assert_eq!(root.dkms(&["status", "inst"]).stdout.lines().count(), 2);
    assert_eq!(root.dkms(&["status", "-m", "inst", "-v", "9"]).stdout, "");
    let out = root.dkms(&["status", "-k", K2]);
    insta::assert_snapshot!(out.stdout, @r"
    added/1.0: added
    diff/1, 6.12.117+deb12-amd64, x86_64: installed (Differences between built and installed modules)
    gone/1: broken
    inst/2.0, 6.12.117+deb12-amd64, x86_64: built
    orig/1: added
    two/3: added
    ");
    // Repeated -k: one pass per kernel, in the given order.
    let out = root.dkms(&["status", "inst/2.0", "-k", K2, "-k", K1]);
    assert_eq!(
        out.stdout,
        format!("inst/2.0, {K2}, x86_64: built\ninst/2.0, {K1}, x86_64: installed\n")
    );
    assert_eq!(
        root.dkms(&["status", "inst", "-a", "aarch64"]).stdout,
        "inst/2.0: added\n"
    );
}

#[test]
fn status_always_exits_zero_and_changes_no_state() {
    let root = zoo();
    let before = root.snapshot();
    assert_eq!(root.dkms(&["status", "nosuchmodule"]).code, 0);
    assert_eq!(root.dkms(&["status"]).code, 0);
    // The only files status may add are its caches, dot-files inside build directories.
    let after = root.snapshot();
    let added: Vec<&String> = after.iter().filter(|e| !before.contains(e)).collect();
    assert!(
        before.iter().all(|e| after.contains(e)),
        "status removed or changed something"
    );
    assert!(
        !added.is_empty(),
        "the installed modules' comparison is memoized"
    );
    for entry in added {
        assert!(
            entry.contains("/x86_64/.dkms-identical.json")
                || entry.contains("/x86_64/.dkms-conf-cache.json"),
            "{entry}"
        );
    }
    // A second status adds nothing more.
    let settled = root.snapshot();
    root.dkms(&["status"]).ok();
    assert_eq!(root.snapshot(), settled);
    let empty = Root::new();
    std::fs::remove_dir_all(empty.dkms_tree()).unwrap();
    let out = empty.dkms(&["status"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
}

#[test]
fn json_schema_is_locked() {
    let root = Root::new();
    root.fake_kernel(K1, "");
    root.source("m", "1", &simple_conf("m", "1"))
        .added("m", "1")
        .built("m", "1", K1, A, &["m.ko"])
        .installed("m", "1", K1, A);
    root.source("n", "2", &simple_conf("n", "2"))
        .added("n", "2");
    let out = root.dkms(&["status", "--json"]);
    out.ok();
    let text = out.stdout.replace(root.path().to_str().unwrap(), "<root>");
    insta::assert_snapshot!(text, @r#"
    {
      "schema": "dkms-status/1",
      "entries": [
        {
          "module": "m",
          "version": "1",
          "state": "installed",
          "kernel": "6.1.0-56-amd64",
          "arch": "x86_64",
          "original_modules": false,
          "problem": null,
          "modules": [
            {
              "name": "m",
              "built": "<root>/var/lib/dkms/m/1/6.1.0-56-amd64/x86_64/module/m.ko",
              "installed": "<root>/lib/modules/6.1.0-56-amd64/updates/dkms/m.ko",
              "signature": {
                "signed": false
              }
            }
          ]
        },
        {
          "module": "n",
          "version": "2",
          "state": "added",
          "original_modules": false,
          "problem": null,
          "modules": []
        }
      ],
      "failed": [],
      "secure_boot": []
    }
    "#);
}

#[test]
#[cfg_attr(
    not(dkms_host_debian_dkms),
    ignore = "needs Debian's bash dkms (.ci/install-deps)"
)]
fn side_by_side_with_debians_bash_dkms() {
    if !common::host_ready(&[Needs::DebianDkms]) {
        return;
    }
    let root = Root::new();
    root.fake_kernel(K1, "").fake_kernel(K2, "");
    root.source("alpha", "1.0", &simple_conf("alpha", "1.0"))
        .added("alpha", "1.0");
    root.source("beta", "2.1", &simple_conf("beta", "2.1"))
        .added("beta", "2.1")
        .built("beta", "2.1", K1, A, &["beta.ko"])
        .installed("beta", "2.1", K1, A)
        .built("beta", "2.1", K2, A, &["beta.ko"]);
    root.source("beta", "2.10", &simple_conf("beta", "2.10"))
        .added("beta", "2.10");
    root.source("gamma", "1", &simple_conf("gamma", "1"))
        .added("gamma", "1")
        .built("gamma", "1", K2, A, &["gamma.ko"])
        .installed("gamma", "1", K2, A)
        .original("gamma", K2, A);
    root.source("delta", "0.1", &simple_conf("delta", "0.1"))
        .added("delta", "0.1")
        .built("delta", "0.1", K1, A, &["delta.ko"])
        .installed("delta", "0.1", K1, A);
    root.write(
        &format!("lib/modules/{K1}/updates/dkms/delta.ko"),
        "changed",
    );
    for args in [
        vec!["status"],
        vec!["status", "beta"],
        vec!["status", "-k", K2],
        vec!["status", "-m", "beta", "-v", "2.1", "-k", K1],
    ] {
        let ours = root.dkms(&args);
        let theirs = root.bash_dkms(&args);
        assert_eq!(ours.code, theirs.code, "{args:?}");
        let ours_in_old_words: String = ours
            .stdout
            .lines()
            .map(|l| common::to_3_0_10_wording(l) + "\n")
            .collect();
        assert_eq!(ours_in_old_words, theirs.stdout, "{args:?}");
    }
}

#[test]
#[cfg_attr(
    not(dkms_host_debian_dkms),
    ignore = "needs Debian's bash dkms (.ci/install-deps)"
)]
fn side_by_side_on_a_tree_written_by_debians_dkms() {
    if !common::host_ready(&[Needs::DebianDkms]) {
        return;
    }
    // The bash dkms adds modules itself; we must read its tree.
    let root = Root::new();
    root.fake_kernel(K1, "");
    root.source("one", "1.0", &simple_conf("one", "1.0"));
    root.source("two", "2.0", &simple_conf("two", "2.0"));
    root.bash_dkms(&["add", "one/1.0"]).ok();
    root.bash_dkms(&["add", "-m", "two", "-v", "2.0"]).ok();
    assert_eq!(
        root.dkms(&["status"]).stdout,
        root.bash_dkms(&["status"]).stdout
    );
    assert_eq!(
        root.dkms(&["status"]).stdout,
        "one/1.0: added\ntwo/2.0: added\n"
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_debian_dkms),
    ignore = "needs Debian's bash dkms (.ci/install-deps)"
)]
fn bash_evaluations_are_cached_for_status_and_invalidated_by_changes() {
    if !common::host_ready(&[Needs::DebianDkms]) {
        return;
    }
    let root = Root::new();
    root.fake_kernel(K1, "").fake_kernel(K2, "");
    // Shell logic (a command substitution) forces bash; each evaluation leaves a line.
    let counter = root.path().join("evaluations");
    let conf = format!(
        "PACKAGE_NAME=c\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME=c\nDEST_MODULE_LOCATION=/updates\n: $(echo $kernelver >> {})\n",
        counter.display()
    );
    root.source("c", "1", &conf).added("c", "1");
    root.built("c", "1", K1, A, &["c.ko"])
        .built("c", "1", K2, A, &["c.ko"]);
    let evaluations = || {
        std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .lines()
            .count()
    };

    let first = root.dkms(&["status"]);
    first.ok();
    assert_eq!(evaluations(), 2, "one bash evaluation per kernel");
    assert_eq!(root.dkms(&["status"]).stdout, first.stdout);
    assert_eq!(evaluations(), 2, "the second status used the cache");

    // An override file for one kernel appears: only that kernel is evaluated again, and
    // the new module name shows.
    root.write(
        &format!("etc/dkms/c--{K2}.conf"),
        "DEST_MODULE_NAME=renamed\n",
    );
    let third = root.dkms(&["status"]);
    assert_eq!(evaluations(), 3);
    assert_eq!(
        third.stdout,
        format!("c/1, {K1}, x86_64: built\nc/1, {K2}, x86_64: built (Built modules are missing in the kernel modules folder)\n")
    );
    // Editing dkms.conf itself invalidates both.
    std::fs::write(
        root.source_tree().join("c-1/dkms.conf"),
        conf.replace("BUILT_MODULE_NAME=c", "BUILT_MODULE_NAME=c # edited"),
    )
    .unwrap();
    root.dkms(&["status"]).ok();
    assert_eq!(evaluations(), 5);
    // The cache is a dot-file in the build directory: the original ignores it.
    assert_eq!(
        root.bash_dkms(&["status", "-k", K1]).stdout,
        format!("c/1, {K1}, x86_64: built\n")
    );
}

#[test]
fn a_memoized_identical_module_that_changes_shows_differences() {
    let root = Root::new();
    root.fake_kernel(K1, "");
    root.source("m", "1", &simple_conf("m", "1"))
        .added("m", "1")
        .built("m", "1", K1, A, &["m.ko"])
        .installed("m", "1", K1, A);
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("m/1, {K1}, x86_64: installed\n")
    );
    // Same size, other bytes, written after the memo was made.
    let installed = root.install_tree().join(K1).join("updates/dkms/m.ko");
    let len = std::fs::metadata(&installed).unwrap().len() as usize;
    std::fs::write(&installed, "x".repeat(len)).unwrap();
    assert_eq!(
        root.dkms(&["status"]).stdout,
        format!("m/1, {K1}, x86_64: installed (Differences between built and installed modules)\n")
    );
}
