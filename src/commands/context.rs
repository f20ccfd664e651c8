//! What every command works with: the run's context (resolved options, settings, the
//! state tree, what changed), the dkms.conf reader with the original's console side
//! effects, and the global lock.
//!
//! Why here and not in the dispatcher: the commands share these, and a command should
//! not have to import its own dispatcher to get them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::options::Options;
use crate::commands::error::Result;
use crate::conf::{self, KernelDirs, ModuleConf};
use crate::framework::Settings;
use crate::module::kbuild::SignerCell;
use crate::report::Reporter;
use crate::state::{KernelArch, StateTree};

/// Everything an action needs.
pub struct Context<'a> {
    pub opts: &'a Options,
    pub settings: &'a Settings,
    pub report: &'a Reporter,
    pub tree: StateTree,
    /// Kernels whose installed modules this run changed (for post_transaction).
    pub changed: std::sync::Mutex<Vec<String>>,
    /// One make jobserver shared by every build of a parallel run.
    pub jobserver: Option<jobserver::Client>,
    /// depmod runs once per kernel at the end of the run, not after each install.
    pub batch_depmod: bool,
    /// Every dkms.conf read strictly in this run, by (file, module, version, kernel,
    /// arch): an install that builds first reads it once, and says what it says once.
    pub(crate) confs: ConfMemo,
    /// Each kernel's signing decision, shared by the builds of this run.
    pub(crate) signers:
        std::sync::Arc<std::sync::Mutex<BTreeMap<String, std::sync::Arc<SignerCell>>>>,
}

/// By (file, module, version, kernel/arch, the headers when not the kernel's own).
type ConfKey = (PathBuf, String, String, KernelArch, Option<PathBuf>);
type ConfMemo = std::sync::Arc<std::sync::Mutex<BTreeMap<ConfKey, ModuleConf>>>;

impl<'a> Context<'a> {
    pub(crate) fn mark_changed(&self, kernel: &str) {
        self.changed
            .lock()
            .expect("changed list")
            .push(kernel.to_string());
    }

    /// A context for the jobs of a batch (autoinstall, kernel removal): depmod runs once
    /// per kernel at the end, builds share `jobserver`.
    pub(crate) fn batch_worker(&self, jobserver: Option<jobserver::Client>) -> Context<'a> {
        Context {
            opts: self.opts,
            settings: self.settings,
            report: self.report,
            tree: self.tree.clone(),
            changed: Default::default(),
            jobserver,
            batch_depmod: true,
            confs: self.confs.clone(),
            signers: self.signers.clone(),
        }
    }

    /// `<kernel>`'s build directory and config (`--kernelsourcedir`, `--config`, else the
    /// installed headers).
    pub(crate) fn kernel_dirs(&self, kernel: &str) -> KernelDirs {
        self.opts.kernel_dirs(self.settings, kernel)
    }

    /// The request to read `file` as `m/v` on `ka`, with this run's overrides.
    pub(crate) fn conf_request<'b>(
        &'b self,
        file: PathBuf,
        m: &'b str,
        v: &'b str,
        ka: &'b KernelArch,
    ) -> crate::conf::ConfRequest<'b> {
        self.opts.conf_request(self.settings, file, m, v, ka)
    }

    /// `m/v` on `ka` with its dkms.conf, for the jobs of the module layer.
    pub(crate) fn on_kernel<'b>(
        &'b self,
        module: &'b str,
        version: &'b str,
        ka: &'b KernelArch,
        conf: &'b ModuleConf,
    ) -> crate::module::ModuleOnKernel<'b> {
        crate::module::ModuleOnKernel {
            settings: self.settings,
            tree: &self.tree,
            report: self.report,
            module,
            version,
            ka,
            conf,
        }
    }

    /// The dkms.conf of `m/v`: `-c FILE`, else the one in its source.
    pub(crate) fn conf_file(&self, m: &str, v: &str) -> PathBuf {
        (self.opts.conf_file.clone()).unwrap_or_else(|| self.tree.conf_file(m, v))
    }

    /// `kernel`'s signing decision, made by the first build that needs it.
    pub(crate) fn signer(&self, kernel: &str) -> std::sync::Arc<SignerCell> {
        let mut cells = self.signers.lock().expect("signers");
        cells.entry(kernel.to_string()).or_default().clone()
    }

    /// The certificates of the signers this run used (each once).
    pub(crate) fn signing_certificates(&self) -> Vec<PathBuf> {
        let cells = self.signers.lock().expect("signers");
        let mut certs: Vec<PathBuf> = cells
            .values()
            .filter_map(|c| c.get().and_then(|s| s.as_ref()))
            .map(|s| s.cert_path().to_path_buf())
            .collect();
        certs.sort();
        certs.dedup();
        certs
    }

    pub(crate) fn changed_kernels(&self) -> Vec<String> {
        let mut k = self.changed.lock().expect("changed list").clone();
        k.sort();
        k.dedup();
        k
    }
}

impl Context<'_> {
    /// Strict read with the original's console side effects (deprecations, warnings).
    pub(crate) fn read_strict(
        &self,
        file: &Path,
        m: &str,
        v: &str,
        ka: &KernelArch,
    ) -> Result<ModuleConf> {
        self.read_strict_with(file, m, v, ka, None)
    }

    /// [`read_strict`] against the headers in `dirs` instead of the request's (a kernel not
    /// installed yet, for preflight).
    pub(crate) fn read_strict_with(
        &self,
        file: &Path,
        m: &str,
        v: &str,
        ka: &KernelArch,
        dirs: Option<&KernelDirs>,
    ) -> Result<ModuleConf> {
        // By the file itself: `add` reads it in the source tree, later steps through the
        // `source` link.
        let real = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        let key = (
            real,
            m.to_string(),
            v.to_string(),
            ka.clone(),
            dirs.map(|d| d.build.clone()),
        );
        if let Some(conf) = self.confs.lock().expect("conf memo").get(&key) {
            return Ok(conf.clone());
        }
        let creq = match dirs {
            Some(d) => self
                .conf_request(file.to_path_buf(), m, v, ka)
                .with_headers(d),
            None => self.conf_request(file.to_path_buf(), m, v, ka),
        };
        for d in &self.opts.conf.directives {
            if let Some((name, value)) = d.split_once('=') {
                self.report.line(&format!("DIRECTIVE: {name}=\"{value}\""));
            }
        }
        let evaluated = conf::evaluate(&creq)?;
        // A syntax error is reported once, with its fix, among the conf's problems.
        for message in &evaluated.messages {
            let bash_said = message
                .split_once(": line ")
                .and_then(|(_, r)| r.split_once(": "));
            let syntax = evaluated.syntax_error.is_some()
                && bash_said.is_some_and(|(_, said)| conf::eval::is_syntax_message(said));
            if !syntax {
                self.report.stderr(message);
            }
        }
        let (conf, problems) = conf::interpret(&creq, &evaluated);
        for d in &conf.deprecated {
            self.report.deprecated(d);
        }
        for w in &conf.warnings {
            self.report.stderr(w);
        }
        if !problems.is_empty() {
            return Err(conf::ConfError::Invalid {
                file: file.to_path_buf(),
                problems,
            }
            .into());
        }
        self.confs
            .lock()
            .expect("conf memo")
            .insert(key, conf.clone());
        Ok(conf)
    }

    /// Take the global lock, saying who holds it if we have to wait.
    pub(crate) fn take_lock(&self) -> Result<crate::state::lock::Lock> {
        let lock = crate::state::lock::acquire(&self.settings.dkms_tree, |pid| {
            let who = pid
                .map(|p| format!("process {p}"))
                .unwrap_or_else(|| "another process".into());
            self.report.stderr(&format!(
                "Waiting for the dkms lock held by {who} ({})...",
                self.settings.dkms_tree.join(".lock").display()
            ));
        })?;
        recover_interrupted(self);
        Ok(lock)
    }
}

/// Undo (or complete) the transaction of a dkms that was killed; the lock is held.
pub(crate) fn recover_interrupted(ctx: &Context) {
    match crate::transaction::recover(&ctx.settings.dkms_tree) {
        crate::transaction::Recovery::Nothing => {}
        crate::transaction::Recovery::RolledBack(n) => ctx.report.warn(&format!(
            "An earlier dkms was interrupted during an install or uninstall; its {n} change(s) were undone."
        )),
        crate::transaction::Recovery::Completed(n) => ctx.report.warn(&format!(
            "An earlier dkms was interrupted while finishing an install or uninstall; its {n} change(s) were completed."
        )),
    }
    let swept = crate::state::garbage::sweep(&ctx.settings.dkms_tree, &ctx.settings.source_tree);
    if swept > 0 {
        ctx.report.warn(&format!(
            "An earlier dkms was interrupted; {swept} leftover(s) of its unfinished work were deleted."
        ));
    }
}
