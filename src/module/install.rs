//! Installing built modules into `/lib/modules/<k>/...`, uninstalling them, depmod.
//!
//! Transactional: every change is recorded in a [`Transaction`] — a new file is written
//! beside its destination and renamed into place, a file it replaces is first renamed to
//! a backup, an original module is moved (with its `.origin` record) into the state tree,
//! and the `kernel-<k>-<a>` link is replaced by renaming a new link over it. If anything
//! fails (a copy, a full disk, depmod), the steps are undone in reverse order and the
//! previous module and state are exactly as they were; on success the backups are
//! deleted. The state tree link changes only after every file is in place.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

use crate::conf::ModuleEntry;
use crate::framework::Settings;
use crate::module::modinfo::Order;
use crate::report::Reporter;
use crate::state::kept::Kept;
use crate::state::manifest::{Check, Kind, Manifest, Placed};
use crate::state::module_file;
use crate::transaction::{Transaction, TxError};

#[derive(Debug, Error)]
pub enum InstallError {
    #[error(
        "The directory {0} doesn't exist.\nYou cannot install a module onto a non-existent kernel."
    )]
    NoKernelDir(PathBuf),
    #[error("The built module {0} is missing.\nRebuild it with: dkms build --force")]
    BuiltMissing(PathBuf),
    #[error("pre_install failed, aborting install.\nYou may override by specifying --force.")]
    PreInstall,
    #[error("The install location '{location}' of {module} leaves the kernel's module tree.\nFix DEST_MODULE_LOCATION in dkms.conf (or ADDON_MODULES_DIR).")]
    LeavesTree { module: String, location: String },
    #[error("Installation aborted.")]
    Aborted,
    #[error("{path} belongs to the package {package}: dkms does not replace or delete another package's files.\nRemove that package first ({remove} {package}), or leave this module to it.")]
    OwnedByPackage {
        path: PathBuf,
        package: String,
        remove: &'static str,
    },
    #[error("Problems with depmod detected. Automatically uninstalling this module.\nInstall Failed (depmod problems). Module rolled back to built state.\n{0}")]
    Depmod(String),
    #[error("{0}\nNothing was changed: the previous modules and state are restored.")]
    Tx(#[from] TxError),
}

impl InstallError {
    pub fn exit_code(&self) -> i32 {
        match self {
            InstallError::PreInstall => crate::exit::PRE_INSTALL_FAILED,
            _ => crate::exit::INSTALL_FAILED,
        }
    }
}

/// Where a module is installed: `ADDON_MODULES_DIR`, the distribution's directory,
/// else the module's own `DEST_MODULE_LOCATION`. Refused if it would leave the tree.
pub fn dest_dir(settings: &Settings, m: &str, entry: &ModuleEntry) -> Result<String, InstallError> {
    let location = settings
        .module_dir_override()
        .unwrap_or_else(|| entry.dest_location.clone());
    if location.split('/').any(|c| c == "..") {
        return Err(InstallError::LeavesTree {
            module: m.into(),
            location,
        });
    }
    Ok(location)
}

/// Install one built (module, version, kernel, arch).
pub struct InstallJob<'a> {
    /// The module version and kernel.
    pub on: crate::module::ModuleOnKernel<'a>,
    pub force: bool,
    pub force_version_override: bool,
    pub no_depmod: bool,
}

impl InstallJob<'_> {
    pub fn run(&self) -> Result<(), InstallError> {
        let lib = self.on.settings.install_tree.join(&self.on.ka.kernel);
        if !lib.is_dir() {
            return Err(InstallError::NoKernelDir(lib));
        }
        let failed = self.script("pre_install", &self.on.conf.pre_install);
        if failed.is_some_and(|c| c != 0) && !self.force {
            return Err(InstallError::PreInstall);
        }
        let mut tx = Transaction::begin(&self.on.tree.root)?;
        if let Err(e) = self.place(&mut tx, &lib) {
            tx.rollback();
            if matches!(e, InstallError::Depmod(_)) {
                // Put depmod's index back in line with the restored tree.
                let _ = depmod(self.on.settings, &self.on.ka.kernel, self.on.report);
            }
            return Err(e);
        }
        tx.commit()?;
        self.weak_modules(true);
        self.script("post_install", &self.on.conf.post_install);
        Ok(())
    }

    /// RHEL's and SUSE's weak-modules, as the original runs it after an install (and
    /// before an uninstall): the installed modules' paths on its standard input, where
    /// the tool exists and neither the environment nor dkms.conf says NO_WEAK_MODULES. A
    /// failure is reported; the install or uninstall stands.
    pub(crate) fn weak_modules(&self, adding: bool) {
        let opted_out = std::env::var("NO_WEAK_MODULES").is_ok_and(|v| !v.is_empty());
        if opted_out || self.on.conf.no_weak_modules {
            return;
        }
        let Ok(dist) = self.on.settings.distribution() else {
            return;
        };
        let Some((tool, add, remove)) = dist.weak_modules(&self.on.ka.kernel) else {
            return;
        };
        let tool = self.on.settings.sysroot.join(tool);
        if !tool.is_file() {
            return;
        }
        let lib = self.on.settings.install_tree.join(&self.on.ka.kernel);
        let mut paths = Vec::new();
        for entry in self
            .on
            .conf
            .modules
            .iter()
            .filter(|e| !e.exclusion.excluded())
        {
            if let Ok(dir) = dest_dir(self.on.settings, self.on.module, entry) {
                paths.extend(module_files_in(
                    &lib.join(dir.trim_start_matches('/')),
                    &entry.dest_name,
                ));
            }
        }
        self.on.report.line(if adding {
            "Adding linked weak modules..."
        } else {
            "Removing linked weak modules..."
        });
        let input: String = paths.iter().map(|p| format!("{}\n", p.display())).collect();
        let run = || -> std::io::Result<std::process::ExitStatus> {
            let mut child = Command::new(&tool)
                .args(if adding { &add } else { &remove })
                .stdin(std::process::Stdio::piped())
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                std::io::Write::write_all(&mut stdin, input.as_bytes())?;
            }
            child.wait()
        };
        match run() {
            Ok(s) if s.success() => {}
            Ok(s) => self.on.report.warn(&format!(
                "{} exited with {s}; the modules are {} all the same.",
                tool.display(),
                if adding { "installed" } else { "uninstalled" }
            )),
            Err(e) => self
                .on
                .report
                .warn(&format!("Cannot run {}: {e}", tool.display())),
        }
    }

    /// Everything the install changes, in `tx`: the modules (a conf that has some must
    /// install at least one), the record of what was placed, the `kernel-<k>-<a>` link,
    /// and depmod's index.
    fn place(&self, tx: &mut Transaction, lib: &Path) -> Result<(), InstallError> {
        self.refuse_packaged(lib)?;
        let mut placed = Vec::new();
        if self.place_modules(tx, lib, &mut placed)? == 0 && !self.on.conf.modules.is_empty() {
            return Err(InstallError::Aborted);
        }
        let record = self
            .on
            .tree
            .manifest_path(self.on.module, self.on.version, self.on.ka);
        tx.place_text(&record, &Manifest::new(placed).to_json(self.on.settings))?;
        let link = self.on.tree.kernel_link(self.on.module, self.on.ka);
        let target = Path::new(self.on.version)
            .join(&self.on.ka.kernel)
            .join(&self.on.ka.arch);
        tx.place_symlink(&target, &link)?;
        if !self.no_depmod {
            depmod(self.on.settings, &self.on.ka.kernel, self.on.report)?;
        }
        Ok(())
    }

    /// Refuse to replace module files (at their destination, any suffix) that a package
    /// owns.
    fn refuse_packaged(&self, lib: &Path) -> Result<(), InstallError> {
        let mut existing = Vec::new();
        for entry in self
            .on
            .conf
            .modules
            .iter()
            .filter(|e| !e.exclusion.excluded())
        {
            let dir = dest_dir(self.on.settings, self.on.module, entry)?;
            let d = lib.join(dir.trim_start_matches('/'));
            existing.extend(module_files_in(&d, &entry.dest_name));
        }
        refuse_owned(self.on.settings, &existing)
    }

    /// Run one of the module's scripts from its source directory, if it has one.
    fn script(&self, kind: &str, command: &Option<String>) -> Option<i32> {
        let source = self
            .on
            .tree
            .version_dir(self.on.module, self.on.version)
            .join("source");
        let command = command.as_ref()?;
        crate::module::script::run(
            self.on.settings,
            self.on.report,
            kind,
            command,
            self.on.module,
            &source,
        )
    }

    /// Install every module; returns how many were installed.
    fn place_modules(
        &self,
        tx: &mut Transaction,
        lib: &Path,
        placed: &mut Vec<Placed>,
    ) -> Result<usize, InstallError> {
        let built_dir = self
            .on
            .tree
            .build_dir(self.on.module, self.on.version, self.on.ka)
            .join("module");
        let first_install = !self
            .on
            .tree
            .kernel_link(self.on.module, self.on.ka)
            .exists();
        let mut installed = 0;
        for entry in self
            .on
            .conf
            .modules
            .iter()
            .filter(|e| !e.exclusion.excluded())
        {
            let built = module_file(&built_dir, &entry.dest_name).ok_or_else(|| {
                InstallError::BuiltMissing(built_dir.join(format!("{}.ko", entry.dest_name)))
            })?;
            let dir = dest_dir(self.on.settings, self.on.module, entry)?;
            let dest_dir = lib.join(dir.trim_start_matches('/'));
            if leaves_tree(lib, &dest_dir) {
                return Err(InstallError::LeavesTree {
                    module: self.on.module.into(),
                    location: dest_dir.display().to_string(),
                });
            }
            let file_name = built.file_name().expect("module file name").to_owned();
            let own_dest = dest_dir.join(&file_name);
            if !self.version_ok(lib, entry, &built, &own_dest, !first_install) {
                continue;
            }
            if first_install {
                self.archive_original(tx, lib, entry, &dir, placed)?;
            }
            // An older copy with another compression suffix would shadow ours.
            for other in ["", ".gz", ".xz", ".zst"] {
                let stale = dest_dir.join(format!("{}.ko{other}", entry.dest_name));
                if stale.file_name() != Some(&file_name) && stale.exists() {
                    tx.remove(&stale)?;
                }
            }
            self.on.report.line(&format!(
                "Installing {}",
                dest_dir.join(&file_name).display()
            ));
            tx.create_dirs(&dest_dir)?;
            let dest = dest_dir.join(&file_name);
            tx.place_file(&built, &dest, self.on.settings.symlink_modules)?;
            let kind = if self.on.settings.symlink_modules {
                Kind::Link
            } else {
                Kind::Module
            };
            placed.push(record(&dest, kind)?);
            installed += 1;
        }
        Ok(installed)
    }

    /// The original's version sanity check (`check_version_sanity`) against the
    /// same-named modules already in the kernel's tree, ours included: a failing module
    /// is skipped, not fatal. `replacing_ours` says another version of this module is
    /// installed for the kernel, so a module at our destination is ours, not the kernel's.
    fn version_ok(
        &self,
        lib: &Path,
        entry: &ModuleEntry,
        built: &Path,
        own_dest: &Path,
        replacing_ours: bool,
    ) -> bool {
        let existing = find_modules(lib, &entry.dest_name);
        self.newer_than(&existing, built, |found| {
            !(replacing_ours && found == own_dest)
        })
    }

    /// Whether `built` may go in beside `existing` (the same-named modules the kernel's
    /// tree has): OBSOLETE_BY, then the version comparison against the one found, unless
    /// forced. `kernels_own` tells the kernel's own module from another version of ours.
    /// Install and packaging (`mkbmdeb`, `mkbmpkg`) decide by this one rule.
    pub(crate) fn newer_than(
        &self,
        existing: &[PathBuf],
        built: &Path,
        kernels_own: impl Fn(&Path) -> bool,
    ) -> bool {
        if let Some(obsolete) = &self.on.conf.obsolete_by {
            if !self.force && crate::kernel::ver(&self.on.ka.kernel) >= crate::kernel::ver(obsolete)
            {
                self.on.report.stderr(&format!("Module has been obsoleted due to being included in kernel {obsolete}. We will avoid installing for future kernels above {obsolete}.\nYou may override by specifying --force."));
                return false;
            }
        }
        if existing.is_empty() || self.force || self.force_version_override {
            return true;
        }
        if existing.len() > 1 {
            let name = built.file_name().unwrap_or_default().to_string_lossy();
            let name = name.split(".ko").next().unwrap_or_default();
            self.on.report.warn(&format!("Cannot do version sanity checking because multiple {name}.ko modules were found in kernel {}.", self.on.ka.kernel));
            return true;
        }
        let installed = &existing[0];
        let (Ok(theirs), Ok(ours)) = (
            crate::module::modinfo::read(installed),
            crate::module::modinfo::read(built),
        ) else {
            return true;
        };
        let name = built.file_name().unwrap_or_default().to_string_lossy();
        let (our_version, our_source) = ours.verinfo();
        let kernels_own = kernels_own(installed);
        match crate::module::modinfo::compare(&theirs, &ours) {
            Order::InstalledNewer => {
                self.on.report.error(&format!("Module version {our_version} for {name} is not newer than what is already found in kernel {} ({}).\nYou may override by specifying --force.", self.on.ka.kernel, theirs.verinfo().0));
                false
            }
            Order::Same if !our_version.is_empty() => {
                self.on.report.stderr(&format!("Module {} already installed at version {our_version}, override by specifying --force", installed.display()));
                false
            }
            Order::Same if !our_source.is_empty() || same_module(installed, built) => {
                self.on.report.stderr(&format!("Module {} already installed (unversioned module), override by specifying --force", installed.display()));
                false
            }
            // Ours, not the original's: a kernel's own module is never shadowed by one
            // that is not newer, as Debian's 3.0.10 decides (3.4.3 would replace it when
            // the bytes differ, or when only the srcversion differs).
            Order::Same | Order::SameVersion if kernels_own => {
                let shown = if our_version.is_empty() {
                    "(none)"
                } else {
                    &our_version
                };
                self.on.report.stderr(&format!("Module version {shown} for {name} is not newer than the kernel's own {}; it stays in place.\nYou may override by specifying --force.", installed.display()));
                false
            }
            _ => true,
        }
    }

    /// On the first install for a kernel, move a same-named module found in the
    /// preferred places (`/extra`, `/updates`, the destination, or the single one
    /// anywhere) into `original_module/<k>/<a>/`, with a `.origin` file.
    fn archive_original(
        &self,
        tx: &mut Transaction,
        lib: &Path,
        entry: &ModuleEntry,
        dir: &str,
        placed: &mut Vec<Placed>,
    ) -> Result<(), InstallError> {
        let candidates = [
            lib.join("extra"),
            lib.join("updates"),
            lib.join(dir.trim_start_matches('/')),
        ];
        let store = self.on.tree.original_module_dir(self.on.module, self.on.ka);
        let preferred = candidates
            .iter()
            .find_map(|d| module_file(d, &entry.dest_name));
        let (originals, store) = match preferred {
            Some(found) => (vec![found], store),
            None => {
                let all = find_modules(lib, &entry.dest_name);
                if all.len() <= 1 {
                    (all, store)
                } else {
                    // Several same-named modules and none in a preferred place: all are
                    // kept for reference under collisions/, never restored automatically.
                    self.on.report.line(&format!(
                        "Multiple original modules named {} exist; storing them in {} for reference.",
                        entry.dest_name,
                        store.join("collisions").display()
                    ));
                    (all, store.join("collisions"))
                }
            }
        };
        let collisions = store.ends_with("collisions");
        for original in originals {
            let relative = original.strip_prefix(lib).unwrap_or(&original);
            let dest = if collisions {
                store.join(relative)
            } else {
                store.join(original.file_name().expect("module file name"))
            };
            self.on.report.line(&format!(
                "Archiving original module {} in {}",
                original.display(),
                dest.parent().unwrap_or(&store).display()
            ));
            tx.create_dirs(dest.parent().unwrap_or(&store))?;
            tx.move_file(&original, &dest)?;
            placed.push(record(&dest, Kind::Original)?);
            tx.write_new(
                &PathBuf::from(format!("{}.origin", dest.display())),
                &format!("{}\n", original.display()),
            )?;
        }
        Ok(())
    }
}

/// `<name>.ko[.gz|.xz|.zst]` present in `dir`.
fn module_files_in(dir: &Path, name: &str) -> Vec<PathBuf> {
    ["", ".gz", ".xz", ".zst"]
        .iter()
        .map(|ext| dir.join(format!("{name}.ko{ext}")))
        .filter(|f| std::fs::symlink_metadata(f).is_ok())
        .collect()
}

/// Fail, naming the package, if a package owns one of `files`.
fn refuse_owned(settings: &Settings, files: &[PathBuf]) -> Result<(), InstallError> {
    match crate::module::owned::owners(&settings.sysroot, files)
        .into_iter()
        .next()
    {
        Some(owned) => Err(InstallError::OwnedByPackage {
            path: owned.path,
            package: owned.package,
            remove: owned.manager.remove_command(),
        }),
        None => Ok(()),
    }
}

/// The record of a file just placed.
fn record(path: &Path, kind: Kind) -> Result<Placed, InstallError> {
    Placed::of(path, kind).map_err(|e| InstallError::Tx(crate::transaction::err("read", path)(e)))
}

/// Whether two module files hold the same module (compared uncompressed).
fn same_module(a: &Path, b: &Path) -> bool {
    match (
        crate::module::compress::read_module(a),
        crate::module::compress::read_module(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Whether `dir` (or the part of it that exists) resolves outside `lib`, through a
/// symlink such as `updates -> /etc`.
fn leaves_tree(lib: &Path, dir: &Path) -> bool {
    let Ok(lib) = std::fs::canonicalize(lib) else {
        return true;
    };
    let mut existing = dir.to_path_buf();
    while !existing.exists() {
        if !existing.pop() {
            return true;
        }
    }
    std::fs::canonicalize(&existing).map_or(true, |real| !real.starts_with(&lib))
}

/// Every `<name>.ko[.gz|.xz|.zst]` under `lib` (not following `build`/`source`).
pub fn find_modules(lib: &Path, name: &str) -> Vec<PathBuf> {
    let wanted: Vec<String> = ["", ".gz", ".xz", ".zst"]
        .iter()
        .map(|s| format!("{name}.ko{s}"))
        .collect();
    let mut out = Vec::new();
    let mut stack = vec![lib.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(ty) = e.file_type() else { continue };
            let fname = e.file_name().to_string_lossy().into_owned();
            if ty.is_dir() {
                stack.push(e.path());
            } else if ty.is_file() && wanted.contains(&fname) {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Run depmod for one kernel of the install tree: skipped when `modules.dep` is absent
/// (a headers-only kernel), `-F System.map` when present. An install tree that is not
/// `<root>/lib/modules` is indexed with `-b <root>`.
pub fn depmod(settings: &Settings, kernel: &str, report: &Reporter) -> Result<(), InstallError> {
    depmod_run(settings, kernel, report).map_err(InstallError::Depmod)
}

/// Run depmod for `kernel` (skipped, with a line, when the tree has no modules.dep):
/// the error is what went wrong, in depmod's words.
pub fn depmod_run(settings: &Settings, kernel: &str, report: &Reporter) -> Result<(), String> {
    let lib = settings.install_tree.join(kernel);
    if !lib.join("modules.dep").exists() {
        report.line(&format!(
            "Skipping depmod because '{}' is missing.",
            lib.join("modules.dep").display()
        ));
        return Ok(());
    }
    let mut cmd = Command::new("depmod");
    let tree = settings
        .install_tree
        .to_string_lossy()
        .trim_end_matches('/')
        .to_string();
    match tree.strip_suffix("/lib/modules") {
        Some("") | None if tree == "/lib/modules" => {}
        Some(base) => {
            cmd.arg("-b").arg(base);
        }
        None => {
            report.warn(&format!("The install tree {tree} does not end in lib/modules; depmod cannot index it, skipped."));
            return Ok(());
        }
    }
    cmd.arg("-a");
    let system_map = settings.sysroot.join(format!("boot/System.map-{kernel}"));
    if system_map.is_file() {
        cmd.arg("-F").arg(&system_map);
    }
    cmd.arg(kernel);
    report.line(&format!("Running depmod for kernel {kernel}..."));
    crate::crashpoint::step("depmod", &lib);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run depmod for {}: {e}", lib.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Uninstall one (module, version, kernel, arch): delete the installed files, prune
/// empty directories, restore archived originals, drop the link, POST_REMOVE, depmod.
pub fn uninstall(job: &InstallJob) -> Result<(), InstallError> {
    let (tree, ka, m, v) = (job.on.tree, job.on.ka, job.on.module, job.on.version);
    job.on.report.line(&format!(
        "Module {m}/{v} for kernel {} ({}):",
        ka.kernel, ka.arch
    ));
    let lib = job.on.settings.install_tree.join(&ka.kernel);
    let active = tree.is_installed(m, v, ka);
    if !active {
        job.on
            .report
            .line("This module version was INACTIVE for this kernel.");
    } else {
        let present = files_at_destinations(job, &lib)?;
        let all: Vec<PathBuf> = present
            .iter()
            .flat_map(|p| p.files.iter().cloned())
            .collect();
        refuse_owned(job.on.settings, &all)?;
        job.on
            .report
            .line("Before uninstall, this module version was ACTIVE on this kernel.");
        job.weak_modules(false);
        let mut tx = Transaction::begin(&tree.root)?;
        let record_path = tree.manifest_path(m, v, ka);
        let record = tree.manifest(job.on.settings, m, v, ka);
        let changed = |f: &Path| {
            record
                .as_ref()
                .and_then(|r| r.files.iter().find(|p| p.path == f))
                .filter(|p| p.check() == Check::Modified)
        };
        let result = (|| {
            for AtDestination { entry, dir, files } in &present {
                for f in files {
                    match changed(f) {
                        Some(placed) => keep_changed(&mut tx, job, &lib, f, placed)?,
                        None => {
                            job.on.report.line(&format!("Deleting {}", f.display()));
                            tx.remove(f)?;
                        }
                    }
                }
                restore_original(&mut tx, job, entry, &lib)?;
                tx.prune_on_commit(&lib.join(dir.trim_start_matches('/')), &lib)?;
            }
            // Emptied by the restores (collisions stay: they are never restored).
            let originals = tree.original_module_dir(m, ka);
            tx.prune_on_commit(&originals, &tree.root.join(m))?;
            if std::fs::symlink_metadata(&record_path).is_ok() {
                tx.remove(&record_path)?;
            }
            Ok(tx.remove(&tree.kernel_link(m, ka))?)
        })();
        if let Err(e) = result {
            tx.rollback();
            return Err(e);
        }
        tx.commit()?;
    }
    if let Some(script) = &job.on.conf.post_remove {
        let source = tree.version_dir(m, v).join("source");
        crate::module::script::run(
            job.on.settings,
            job.on.report,
            "post_remove",
            script,
            m,
            &source,
        );
    }
    if active && !job.no_depmod {
        depmod(job.on.settings, &ka.kernel, job.on.report)?;
    }
    Ok(())
}

/// Set aside a module file changed since its install (re-signed by its user, say) into
/// the dkms tree's `.kept/`, with a record, instead of deleting it or leaving it to
/// block the next install.
fn keep_changed(
    tx: &mut Transaction,
    job: &InstallJob,
    lib: &Path,
    file: &Path,
    placed: &Placed,
) -> Result<(), InstallError> {
    let (m, v, ka) = (job.on.module, job.on.version, job.on.ka);
    let kept = job.on.tree.kept_path(m, v, ka, lib, file);
    let sha256 = crate::state::manifest::digest(file)
        .map(|(_, sum)| sum)
        .unwrap_or_default();
    let record = Kept {
        schema: crate::state::kept::SCHEMA.into(),
        kept: kept.clone(),
        from: file.to_path_buf(),
        module: m.into(),
        version: v.into(),
        kernel: ka.kernel.clone(),
        arch: ka.arch.clone(),
        time: crate::report::now_utc(),
        installed_sha256: placed.sha256.clone(),
        sha256,
    };
    job.on.report.warn(&format!(
        "{} was changed after dkms installed it (its size or SHA-256 differs from the install record): it is moved to {} so that nothing of yours is lost and the module can be installed again. 'dkms verify' lists the files kept this way; delete them when you no longer need them.",
        file.display(),
        kept.display()
    ));
    tx.create_dirs(kept.parent().expect("a kept file's directory"))?;
    tx.move_file(file, &kept)?;
    tx.write_new(
        &crate::state::kept::record_path(&kept),
        &record.to_json(job.on.settings),
    )?;
    Ok(())
}

/// A module of the conf, its install directory, and the module files (any suffix) found
/// where it may be installed.
struct AtDestination<'c> {
    entry: &'c ModuleEntry,
    dir: String,
    files: Vec<PathBuf>,
}

/// Each module of the conf at its destinations, each file listed once.
fn files_at_destinations<'c>(
    job: &'c InstallJob,
    lib: &Path,
) -> Result<Vec<AtDestination<'c>>, InstallError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut present = Vec::new();
    for entry in &job.on.conf.modules {
        let dir = dest_dir(job.on.settings, job.on.module, entry)?;
        let mut files = Vec::new();
        for location in [dir.as_str(), entry.dest_location.as_str()] {
            let d = lib.join(location.trim_start_matches('/'));
            files.extend(
                module_files_in(&d, &entry.dest_name)
                    .into_iter()
                    .filter(|f| seen.insert(f.clone())),
            );
        }
        present.push(AtDestination { entry, dir, files });
    }
    Ok(present)
}

/// Put an archived original back where its `.origin` says (only inside this kernel's
/// module tree), else under the module's DEST_MODULE_LOCATION.
fn restore_original(
    tx: &mut Transaction,
    job: &InstallJob,
    entry: &ModuleEntry,
    lib: &Path,
) -> Result<(), InstallError> {
    let store = job.on.tree.original_module_dir(job.on.module, job.on.ka);
    let Some(archived) = module_file(&store, &entry.dest_name) else {
        return Ok(());
    };
    let origin_file = PathBuf::from(format!("{}.origin", archived.display()));
    let recorded = std::fs::read_to_string(&origin_file)
        .ok()
        .map(|t| PathBuf::from(t.trim()));
    let target = match recorded {
        Some(p)
            if p.starts_with(lib)
                && !p.components().any(|c| c == std::path::Component::ParentDir) =>
        {
            p
        }
        _ => lib
            .join(entry.dest_location.trim_start_matches('/'))
            .join(archived.file_name().unwrap_or_default()),
    };
    job.on.report.line(&format!(
        "Restoring archived original module {}",
        target.display()
    ));
    if let Some(dir) = target.parent() {
        tx.create_dirs(dir)?;
    }
    tx.move_file(&archived, &target)?;
    if origin_file.exists() {
        tx.remove(&origin_file)?;
    }
    Ok(())
}
