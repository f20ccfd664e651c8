//! Seeded generators of hostile input and the three readers they are thrown at: the
//! command-line parser, the dkms.conf fast path (with the interpretation behind it) and
//! the state-tree reader (with `status` on top). Shared by `tests/it/fuzz.rs` (a bounded
//! number of cases in CI) and `bench/fuzz.rs` (millions, with timing).
//!
//! A case fails only by panicking: every input must give a result or a clear error.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use dkms::cli::FsProbe;

/// One target's tally.
#[derive(Debug, Default)]
pub struct Tally {
    pub cases: u64,
    pub panics: u64,
    /// The first few inputs that panicked, with the panic message.
    pub examples: Vec<String>,
}

impl Tally {
    fn run(&mut self, input: impl Fn() -> String, case: impl FnOnce()) {
        self.cases += 1;
        if let Err(e) = std::panic::catch_unwind(AssertUnwindSafe(case)) {
            self.panics += 1;
            if self.examples.len() < 5 {
                let what = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.examples.push(format!("{what} <- {}", input()));
            }
        }
    }
}

fn pick<'a>(rng: &mut fastrand::Rng, items: &[&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}

fn random_bytes(rng: &mut fastrand::Rng, max: usize) -> Vec<u8> {
    let len = rng.usize(..=max);
    (0..len).map(|_| rng.u8(..)).collect()
}

// ---------------------------------------------------------------- command line

const WORDS: &[&str] = &[
    "add",
    "remove",
    "build",
    "unbuild",
    "install",
    "uninstall",
    "autoinstall",
    "match",
    "mktarball",
    "ldtarball",
    "status",
    "generate_mok",
    "kernel_preinst",
    "kernel_postinst",
    "kernel_prerm",
    "-m",
    "-v",
    "-k",
    "-a",
    "-c",
    "-j",
    "-q",
    "-V",
    "-h",
    "--force",
    "--all",
    "--all-kernels",
    "--json",
    "--binaries-only",
    "--source-only",
    "--kernelver",
    "--kernelver=6.1.0-1-amd64/x86_64",
    "--kernelverX",
    "--module=m/1.0",
    "--arch",
    "--archive",
    "--archive=/tmp/a.tar.gz",
    "--dkmstree",
    "--sourcetree=/usr/src",
    "--installtree",
    "--directive=MAKE=x",
    "--config",
    "--kernelsourcedir",
    "--templatekernel",
    "--rpm_safe_upgrade",
    "--no-depmod",
    "--verbose",
    "--debug",
    "--no-initrd",
    "--bogus",
    "-x",
    "-",
    "--",
    "",
    "=",
    "m/1.0",
    "m/",
    "/1.0",
    "m",
    "1.0",
    "6.1.0-1-amd64",
    "6.1.0-1-amd64/x86_64",
    "/",
    "//",
    "./dkms.conf",
    "dir/dkms.conf",
    "a\\\nb",
    " spaced ",
    "a\tb",
    "\\",
    "j0",
    "0",
    "99999999999",
];

/// A command line: known words, their `=` forms, random text and random bytes.
pub fn argv(rng: &mut fastrand::Rng) -> Vec<OsString> {
    (0..rng.usize(..9))
        .map(|_| match rng.u8(..10) {
            0..=5 => OsString::from(pick(rng, WORDS)),
            6 => OsString::from(format!("{}={}", pick(rng, WORDS), pick(rng, WORDS))),
            7 => OsString::from(format!("{}/{}", pick(rng, WORDS), pick(rng, WORDS))),
            8 => OsString::from_vec(random_bytes(rng, 12)),
            _ => OsString::from("x".repeat(rng.usize(..3000))),
        })
        .collect()
}

/// Answers the parser's filesystem questions from a hash of the path and a seed.
pub struct FakeFs(pub u64);

impl FakeFs {
    fn says(&self, path: &Path, salt: u64) -> bool {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (path, self.0, salt).hash(&mut h);
        h.finish().is_multiple_of(3)
    }
}

impl FsProbe for FakeFs {
    fn is_file(&self, path: &Path) -> bool {
        self.says(path, 1)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.says(path, 2)
    }
}

pub fn cli_case(rng: &mut fastrand::Rng, tally: &mut Tally) {
    let args = argv(rng);
    let fs = FakeFs(rng.u64(..));
    tally.run(
        || format!("{args:?}"),
        || {
            let _ = dkms::cli::parse_with(&args, &fs);
        },
    );
}

// ---------------------------------------------------------------- dkms.conf

const NAMES: &[&str] = &[
    "PACKAGE_NAME",
    "PACKAGE_VERSION",
    "BUILT_MODULE_NAME",
    "BUILT_MODULE_LOCATION",
    "DEST_MODULE_NAME",
    "DEST_MODULE_LOCATION",
    "MAKE",
    "MAKE_MATCH",
    "CLEAN",
    "PATCH",
    "PATCH_MATCH",
    "AUTOINSTALL",
    "STRIP",
    "BUILD_EXCLUSIVE_KERNEL",
    "BUILD_EXCLUSIVE_ARCH",
    "BUILD_EXCLUSIVE_CONFIG",
    "BUILD_EXCLUSIVE_KERNEL_MIN",
    "BUILD_EXCLUSIVE_KERNEL_MAX",
    "BUILD_DEPENDS",
    "BUILD_DEPENDS_REBUILD",
    "OBSOLETE_BY",
    "POST_ADD",
    "PRE_BUILD",
    "NO_WEAK_MODULES",
    "REMAKE_INITRD",
    "OTHER",
    "kernelver",
];

const VALUES: &[&str] = &[
    "",
    "x",
    "m",
    "1.0",
    "/updates/dkms",
    "/kernel/extra",
    "/extra/../../etc",
    "/oops",
    "a.ko",
    "a.o",
    "a/b",
    "..",
    ".",
    "yes",
    "no",
    "YES",
    "maybe",
    "6.1",
    "6.1.0-1-amd64",
    "$kernelver",
    "${kernel_source_dir}",
    "${dkms_tree}/$module",
    "CONFIG_MODULES !CONFIG_X",
    "^6\\.",
    "[",
    "make -C $kernel_source_dir M=$dkms_tree/build",
    "é",
    "\\",
    "a b",
];

const INDICES: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "10",
    "999999",
    "4611686018427387904",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "01",
    "",
];

/// One line of a dkms.conf: assignments (plain, indexed, quoted), comments, blanks,
/// shell that needs bash, CRs and random bytes.
fn conf_line(rng: &mut fastrand::Rng) -> Vec<u8> {
    let (name, value) = (pick(rng, NAMES), pick(rng, VALUES));
    let text = match rng.u8(..14) {
        0..=3 => format!("{name}=\"{value}\""),
        4..=6 => format!("{name}[{}]=\"{value}\"", pick(rng, INDICES)),
        7 => format!("{name}={value}"),
        8 => format!("{name}='{value}'"),
        9 => format!("# {value}"),
        10 => format!("{name}=\"{value}\"\r"),
        11 => format!("{name}=$(echo {value})"),
        12 => String::new(),
        _ => return random_bytes(rng, 20),
    };
    text.into_bytes()
}

pub fn conf_text(rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.usize(..16) {
        out.extend(conf_line(rng));
        out.push(b'\n');
    }
    out
}

/// Settings for a scratch root (trees under `root`, no framework.conf).
pub fn settings(root: &Path) -> dkms::framework::Settings {
    let req = dkms::cli::Request {
        dkms_tree: Some(root.join("var/lib/dkms")),
        source_tree: Some(root.join("usr/src")),
        install_tree: Some(root.join("lib/modules")),
        framework_conf: Some(root.join("etc/dkms/framework.conf")),
        ..Default::default()
    };
    let mut s = dkms::framework::Settings::load(&req).expect("settings");
    s.sysroot = root.to_path_buf();
    s
}

/// Evaluate a generated conf with the fast path and, when it answers, interpret it.
pub fn conf_case(
    rng: &mut fastrand::Rng,
    tally: &mut Tally,
    dir: &Path,
    settings: &dkms::framework::Settings,
) {
    let text = conf_text(rng);
    let none = dkms::conf::ConfOverrides::default();
    let file = dir.join("dkms.conf");
    std::fs::write(&file, &text).unwrap();
    tally.run(
        || format!("{:?}", String::from_utf8_lossy(&text)),
        || {
            let mut scope = dkms::conf::eval::Scope::default();
            scope.set("kernelver", "6.1.0-1-amd64");
            scope.set("arch", "x86_64");
            let files = [file.clone()];
            if let Some(values) = dkms::conf::fast::plain_assignments(&files, &scope) {
                let req = dkms::conf::ConfRequest::new(
                    settings,
                    &none,
                    file.clone(),
                    "m",
                    "1.0",
                    "6.1.0-1-amd64",
                    "x86_64",
                );
                let ev = dkms::conf::Evaluated {
                    files: files.to_vec(),
                    values,
                    messages: Vec::new(),
                    syntax_error: None,
                };
                let _ = dkms::conf::interpret(&req, &ev);
            }
        },
    );
}

// ---------------------------------------------------------------- state tree

const KERNELS: &[&str] = &["6.1.0-1-amd64", "6.12.1-amd64", "build", "x", "6.", ".6.1"];
const TREE_NAMES: &[&str] = &[
    "m",
    "n",
    "1.0",
    "2.0",
    "original_module",
    "source",
    "build",
    "module",
    "log",
    "x86_64",
    "kernel-6.1.0-1-amd64-x86_64",
    "m.ko",
    "m.ko.xz",
    "m.ko.zst",
    "m.ko.gz",
    ".hidden",
    ".1.0.removing.5",
    "a b",
    "é",
];

/// A random path of up to six components inside the state tree, shaped like its layout.
fn tree_path(rng: &mut fastrand::Rng) -> PathBuf {
    let mut p = PathBuf::from("var/lib/dkms");
    let parts = [
        pick(rng, &["m", "n"]),
        pick(
            rng,
            &[
                "1.0",
                "2.0",
                "original_module",
                "kernel-6.1.0-1-amd64-x86_64",
            ],
        ),
        pick(rng, KERNELS),
        pick(rng, &["x86_64", "source", "build"]),
        pick(rng, &["module", "log"]),
        pick(rng, TREE_NAMES),
    ];
    for part in parts.iter().take(rng.usize(1..=parts.len())) {
        p.push(part);
    }
    p
}

/// One change to the tree: a directory, a file of random bytes, a symlink (to a place
/// in the tree, to nowhere, to itself), or a removal.
fn mutate(rng: &mut fastrand::Rng, root: &Path) {
    let path = root.join(tree_path(rng));
    let _ = std::fs::create_dir_all(path.parent().unwrap());
    match rng.u8(..6) {
        0 | 1 => {
            let _ = std::fs::create_dir_all(&path);
        }
        2 => {
            let _ = std::fs::write(&path, random_bytes(rng, 64));
        }
        3 => {
            let target = match rng.u8(..4) {
                0 => root.join(tree_path(rng)),
                1 => PathBuf::from(tree_path(rng).file_name().unwrap()),
                2 => path.clone(),
                _ => root.join("usr/src/m-1.0"),
            };
            let _ = std::fs::remove_file(&path);
            let _ = std::os::unix::fs::symlink(target, &path);
        }
        4 => {
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
        _ => {
            let conf = root.join("usr/src/m-1.0/dkms.conf");
            let _ = std::fs::create_dir_all(conf.parent().unwrap());
            // Plain assignments only: status must not need bash here.
            let text: String = (0..rng.usize(..10))
                .map(|_| {
                    let (name, value) = (pick(rng, NAMES), pick(rng, VALUES));
                    match rng.bool() {
                        true => format!("{name}=\"{}\"\n", value.replace('$', "")),
                        false => {
                            format!("{name}[{}]=\"{}\"\n", rng.u8(..4), value.replace('$', ""))
                        }
                    }
                })
                .collect();
            let _ = std::fs::write(conf, text);
        }
    }
}

/// Mutate the tree once and read it every way dkms does.
pub fn state_case(
    rng: &mut fastrand::Rng,
    tally: &mut Tally,
    root: &Path,
    settings: &dkms::framework::Settings,
) {
    mutate(rng, root);
    tally.run(
        || format!("tree {}", root.display()),
        || {
            let tree = dkms::state::StateTree::new(root.join("var/lib/dkms"));
            for (m, v) in tree.module_versions(None, None) {
                let _ = tree.registration(&m, &v, &root.join("usr/src"));
                let _ = tree.kernel_dirs(&m, &v);
                for ka in tree.built(&m, &v, None, None) {
                    let _ = tree.is_installed(&m, &v, &ka);
                }
            }
            let filter = dkms::state::status::Filter::default();
            let none = dkms::conf::ConfOverrides::default();
            let mut entries = dkms::state::status::collect(settings, &none, &filter);
            let mut reader = dkms::module::sign::StatusSignatures::new(settings, &none);
            dkms::state::status::add_signatures(&mut entries, &mut reader);
            for e in &entries {
                let _ = dkms::state::status::status_line(e);
            }
            let _ = dkms::state::status::status_json(&entries, &[], &[]);
        },
    );
}

/// A fresh scratch root for the state target.
pub fn fresh_root(root: &Path) {
    let _ = std::fs::remove_dir_all(root);
    for d in [
        "var/lib/dkms",
        "usr/src",
        "lib/modules/6.1.0-1-amd64",
        "etc/dkms",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
}
