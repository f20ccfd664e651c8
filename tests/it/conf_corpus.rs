//! Real dkms.conf files from Debian's `*-dkms` packages, evaluated for two kernels by
//! our evaluator and by the original's own bash code (`safe_source`, extracted from
//! Debian's `/usr/sbin/dkms`), must give identical directives. Where our pure-Rust fast
//! path accepts a file, its result must equal bash's too.

use crate::common::{self, Needs};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Root;
use dkms::conf::{self, eval, fast, ConfRequest};

/// The whitelist of Debian's dkms 3.0.10 (its `dkms_conf_variables`, upper-case names).
const DEBIAN_NAMES: &[&str] = &[
    "CLEAN",
    "PACKAGE_NAME",
    "PACKAGE_VERSION",
    "POST_ADD",
    "POST_BUILD",
    "POST_INSTALL",
    "POST_REMOVE",
    "PRE_BUILD",
    "PRE_INSTALL",
    "BUILD_DEPENDS",
    "BUILD_EXCLUSIVE_KERNEL",
    "BUILD_EXCLUSIVE_ARCH",
    "BUILD_EXCLUSIVE_CONFIG",
    "OBSOLETE_BY",
    "MAKE",
    "MAKE_MATCH",
    "PATCH",
    "PATCH_MATCH",
    "BUILT_MODULE_NAME",
    "BUILT_MODULE_LOCATION",
    "DEST_MODULE_NAME",
    "DEST_MODULE_LOCATION",
    "STRIP",
    "AUTOINSTALL",
    "NO_WEAK_MODULES",
    "SIGN_FILE",
    "MOK_SIGNING_KEY",
    "MOK_CERTIFICATE",
    "REMAKE_INITRD",
    "MODULES_CONF",
    "MODULES_CONF_OBSOLETES",
    "MODULES_CONF_ALIAS_TYPE",
    "MODULES_CONF_OBSOLETE_ONLY",
];

const KERNELS: &[&str] = &["6.1.0-56-amd64", "6.12.117+deb12-rt-amd64"];

type Values = BTreeMap<String, BTreeMap<usize, String>>;

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dkms-conf");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    files
}

/// Evaluate with the original's `safe_source`, taken verbatim from /usr/sbin/dkms.
fn oracle(file: &Path, scope: &[(String, String)]) -> Values {
    let dkms = std::fs::read_to_string("/usr/sbin/dkms")
        .expect("Debian's dkms is installed (.ci/install-deps)");
    let start = dkms
        .find("\nsafe_source() {")
        .expect("safe_source in /usr/sbin/dkms");
    let end = start + dkms[start..].find("\n}\n").unwrap() + 3;
    let mut script =
        String::from("shopt -s extglob\nmktemp_or_die() { mktemp \"$@\"; }\ndeprecated() { :; }\n");
    script.push_str(&dkms[start..end]);
    for (k, v) in scope {
        script.push_str(&format!("{k}={}\n", dkms::bash::quote(v)));
    }
    let names = DEBIAN_NAMES.join(" ");
    script.push_str(&format!(
        "for v in {names}; do unset $v; done\nsafe_source {} {names}\n\
         for __v in {names}; do eval \"__idx=(\\\"\\${{!$__v[@]}}\\\")\"; for __i in \"${{__idx[@]}}\"; do \
         eval \"printf '%s\\0%s\\0%s\\0' \\\"\\$__v\\\" \\\"\\$__i\\\" \\\"\\${{$__v[\\$__i]}}\\\"\"; done; done\n",
        dkms::bash::quote(&file.display().to_string())
    ));
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env_remove("CC")
        .output()
        .unwrap();
    let mut values = Values::new();
    for (name, index, value) in eval::parse_records(&out.stdout) {
        values
            .entry(name)
            .or_default()
            .insert(index.parse().unwrap(), value);
    }
    values
}

fn restrict(values: &Values) -> Values {
    values
        .iter()
        .filter(|(k, _)| DEBIAN_NAMES.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn root_with_kernels() -> Root {
    let root = Root::new();
    root.fake_kernel(
        KERNELS[0],
        "CONFIG_MODULE_SIG_HASH=\"sha256\"\nCONFIG_MODULES=y\n",
    );
    root.fake_kernel(
        KERNELS[1],
        "CONFIG_MODULE_SIG_HASH=\"sha256\"\nCONFIG_PREEMPT_RT=y\n",
    );
    root
}

#[test]
fn corpus_has_the_required_packages() {
    let names: Vec<String> = corpus()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() >= 15, "{names:?}");
    for required in [
        "nvidia-kernel-dkms",
        "zfs-dkms",
        "acpi-call-dkms",
        "v4l2loopback-dkms",
        "r8168-dkms",
    ] {
        assert!(names.iter().any(|n| n == required), "missing {required}");
    }
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn our_evaluation_equals_the_originals_bash_on_every_corpus_file() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let root = root_with_kernels();
    let settings = root.settings();
    let none = dkms::conf::ConfOverrides::default();
    let mut fast_accepted = 0;
    let mut lenient_accepted = 0;
    let mut compared = 0;
    for file in corpus() {
        for kernel in KERNELS {
            let req = ConfRequest::new(
                &settings,
                &none,
                file.clone(),
                "corpus",
                "1.0",
                kernel,
                "x86_64",
            );
            let our_scope = conf::scope_for(&req);
            let expected = oracle(&file, &our_scope.vars);
            assert!(
                expected.contains_key("PACKAGE_NAME"),
                "oracle read nothing from {}",
                file.display()
            );
            let bash =
                eval::source_with_bash(std::slice::from_ref(&file), &our_scope, &[]).unwrap();
            assert_eq!(
                restrict(&bash.values.vars),
                expected,
                "bash driver differs on {} for {kernel}",
                file.display()
            );
            if let Some(f) = fast::plain_assignments(std::slice::from_ref(&file), &our_scope) {
                fast_accepted += 1;
                assert_eq!(
                    f.vars,
                    bash.values.vars,
                    "fast path differs on {} for {kernel}",
                    file.display()
                );
            }
            if let Some(f) =
                fast::plain_assignments_with(std::slice::from_ref(&file), &our_scope, true)
            {
                lenient_accepted += 1;
                assert_eq!(
                    f.vars,
                    bash.values.vars,
                    "lenient fast path differs on {} for {kernel}",
                    file.display()
                );
            }
            // And the public entry point agrees with both.
            let public = conf::evaluate(&req).unwrap();
            assert_eq!(
                restrict(&public.values.vars),
                expected,
                "{}",
                file.display()
            );
            compared += 1;
        }
    }
    assert!(compared >= 30);
    eprintln!("compared {compared} evaluations; fast path accepted {fast_accepted} (strict), {lenient_accepted} (status)");
    // The fast path must carry most real files, or status would start bash for them.
    assert!(
        fast_accepted >= compared / 2,
        "fast path accepted only {fast_accepted} of {compared}"
    );
}

#[test]
#[cfg_attr(
    not(dkms_host_headers_6_1),
    ignore = "needs Debian's 6.1 kernel headers (.ci/install-deps)"
)]
fn shell_logic_depends_on_the_kernel() {
    if !common::host_ready(&[Needs::Headers("6.1")]) {
        return;
    }
    let root = root_with_kernels();
    let settings = root.settings();
    let none = dkms::conf::ConfOverrides::default();
    let file = corpus()
        .into_iter()
        .find(|p| p.ends_with("zfs-dkms.conf"))
        .unwrap();
    let load = |kernel: &str| {
        conf::load_lenient(&ConfRequest::new(
            &settings,
            &none,
            file.clone(),
            "zfs",
            "2.1.11",
            kernel,
            "x86_64",
        ))
        .unwrap()
    };
    assert!(!load(KERNELS[0]).exclusion.excluded());
    assert!(
        load(KERNELS[1]).exclusion.excluded(),
        "zfs excludes PREEMPT_RT kernels"
    );
    let nvidia = corpus()
        .into_iter()
        .find(|p| p.ends_with("nvidia-kernel-dkms.conf"))
        .unwrap();
    // As `add`, `build` and `install` read it: evaluated, interpreted, no problem.
    let req = ConfRequest::new(
        &settings,
        &none,
        nvidia,
        "nvidia-current",
        "535.261.03",
        KERNELS[0],
        "x86_64",
    );
    let (conf, problems) = conf::interpret(&req, &conf::evaluate(&req).unwrap());
    assert!(problems.is_empty(), "{problems:?}");
    let dest: Vec<&str> = conf.modules.iter().map(|m| m.dest_name.as_str()).collect();
    assert_eq!(
        dest,
        [
            "nvidia-current",
            "nvidia-current-modeset",
            "nvidia-current-drm",
            "nvidia-current-uvm",
            "nvidia-current-peermem"
        ]
    );
    assert_eq!(
        conf.make_command,
        "env NV_VERBOSE=1 make -j2 modules KERNEL_UNAME=6.1.0-56-amd64"
    );
    assert!(conf.autoinstall);
}
