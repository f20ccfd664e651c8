//! What runs after the modules of a kernel changed: `modprobe_on_install` (running
//! kernel only) and the framework's `post_transaction` command (3.2+), logged to
//! `<dkms_tree>/post_transaction.log` in make.log's entry format. Neither runs when a
//! request changed nothing (every module already installed, say).

use super::context::Context;
use crate::cmdlog::CommandLog;

/// After an install on `kernel`: load the new modules for present devices, if asked
/// and if it is the running kernel.
pub fn modprobe_on_install(ctx: &Context, kernel: &str) {
    if !ctx.settings.modprobe_on_install || kernel != ctx.settings.current_kernel {
        return;
    }
    let script = "find /sys/devices -name modalias -print0 | xargs -0 cat | xargs modprobe -a -b -q; \
                  if [ -f /lib/systemd/system/systemd-modules-load.service ]; then systemctl restart systemd-modules-load.service; fi";
    let _ = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .status();
}

/// Run `post_transaction` once per run when something changed; once per changed kernel
/// (with `$kernelver` set) only when the command depends on the kernel: its value
/// differs between kernels (framework.conf read lazily with `$kernelver`), or it refers
/// to `kernelver` itself, evaluated when it runs.
pub fn post_transaction(ctx: &Context) {
    boot_image(ctx);
    let kernels = ctx.changed_kernels();
    if ctx.settings.post_transaction.trim().is_empty()
        && !framework_mentions(ctx, "post_transaction")
        || kernels.is_empty()
    {
        return;
    }
    let runs = commands_to_run(ctx, &kernels);
    if runs.is_empty() {
        return;
    }
    let path = ctx.settings.dkms_tree.join("post_transaction.log");
    let Ok(mut log) = CommandLog::create(&path) else {
        ctx.report.warn(&format!(
            "Cannot write {}; post_transaction not run.",
            path.display()
        ));
        return;
    };
    for (kernel, command) in runs {
        let script = format!(
            "kernelver={}; eval {}",
            crate::bash::quote(&kernel),
            crate::bash::quote(&command)
        );
        let dir = ctx.settings.dkms_tree.clone();
        let outcome = log.run("Executing post-transaction command", &script, &dir, &[]);
        match outcome {
            Ok(0) => ctx.report.line("Executing post-transaction command... done."),
            Ok(code) => ctx.report.line(&format!(
                "Executing post-transaction command...(bad exit status: {code})\nConsult {} for more information.",
                path.display()
            )),
            Err(e) => ctx.report.warn(&format!("post_transaction could not run: {e}")),
        }
    }
}

/// The distinct post_transaction runs for `kernels`: (kernel, command), in order.
fn commands_to_run(ctx: &Context, kernels: &[String]) -> Vec<(String, String)> {
    let mut runs: Vec<(String, String)> = Vec::new();
    for kernel in kernels {
        let command = ctx.settings.lazy_value("post_transaction", kernel);
        if command.trim().is_empty() {
            continue;
        }
        let per_kernel = command.contains("kernelver");
        if per_kernel || !runs.iter().any(|(_, c)| c == &command) {
            runs.push((kernel.clone(), command));
        }
    }
    runs
}

/// Whether any framework file names `name` outside a comment (an assignment whose value
/// may depend on `$kernelver`): the documented framework.conf, all comments, costs nothing.
fn framework_mentions(ctx: &Context, name: &str) -> bool {
    let main = &ctx.settings.framework_file;
    let mut files = vec![main.clone()];
    if let Ok(entries) = std::fs::read_dir(format!("{}.d", main.display())) {
        files.extend(entries.flatten().map(|e| e.path()));
    }
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines()
                .any(|l| !l.trim_start().starts_with('#') && l.contains(name))
        })
    })
}

/// After a run that changed installed modules: for each changed kernel that has modules
/// needed at boot (or had, before this run), regenerate its initramfs with the
/// distribution's tool and say whether they are in it (`module::initramfs`). Never
/// fails the run: the install or uninstall stands, and a problem is a warning.
pub fn boot_image(ctx: &Context) {
    use crate::module::initramfs::{self, Tool};
    let every: Vec<(String, Vec<String>)> = ctx
        .changed_kernels()
        .into_iter()
        .map(|k| {
            let names = boot_modules(ctx, &k);
            (k, names)
        })
        .collect();
    for (kernel, names) in &every {
        let before = initramfs::recorded(ctx.settings, kernel);
        if names.is_empty() && before.is_empty() {
            continue;
        }
        if let Err(e) = initramfs::record(ctx.settings, kernel, names) {
            ctx.report.warn(&format!(
                "Cannot record the modules needed at boot for {kernel}: {e}"
            ));
        }
        let Some(tool) = Tool::of(ctx.settings) else {
            ctx.report.warn(&format!("No initramfs tool (update-initramfs, dracut, mkinitcpio) is installed: {} will not be in an initramfs of {kernel}.", names.join(" ")));
            continue;
        };
        let all: Vec<String> = every.iter().flat_map(|(_, n)| n.clone()).collect();
        ctx.report.line(&format!(
            "Updating the initramfs of {kernel} with {} (modules needed at boot: {})...",
            tool.name(),
            if names.is_empty() {
                "none now".to_string()
            } else {
                names.join(" ")
            }
        ));
        if let Err(e) = initramfs::regenerate(ctx.settings, tool, kernel, names, &all) {
            ctx.report.warn(&format!("The initramfs of {kernel} was not updated: {e}\nThe modules are installed; run {} for {kernel} once the problem is fixed.", tool.name()));
            continue;
        }
        check_image(ctx, tool, kernel, names);
    }
}

/// Say which boot modules the regenerated image lacks.
fn check_image(
    ctx: &Context,
    tool: crate::module::initramfs::Tool,
    kernel: &str,
    names: &[String],
) {
    use crate::module::initramfs;
    if names.is_empty() {
        return;
    }
    let Some(image) = initramfs::image(ctx.settings, kernel) else {
        ctx.report.warn(&format!(
            "No initramfs of {kernel} found in /boot to check."
        ));
        return;
    };
    match initramfs::missing_from(ctx.settings, tool, &image, names) {
        Ok(missing) if missing.is_empty() => ctx.report.line(&format!(
            "{} in {}.",
            names.join(" "),
            image.display()
        )),
        Ok(missing) => ctx.report.warn(&format!(
            "{} not in {}, though needed at boot: {} left {} out. A machine that needs {} to find its root may not boot {kernel}.",
            missing.join(" "),
            image.display(),
            tool.name(),
            if missing.len() == 1 { "it" } else { "them" },
            if missing.len() == 1 { "it" } else { "them" },
        )),
        Err(e) => ctx.report.warn(&format!("Cannot check {}: {e}", image.display())),
    }
}

/// The kernel module names of every module version installed for `kernel` whose
/// dkms.conf says NEEDED_AT_BOOT (or REMAKE_INITRD), or that framework.conf's
/// `boot_modules` names.
fn boot_modules(ctx: &Context, kernel: &str) -> Vec<String> {
    let ka = crate::state::KernelArch {
        kernel: kernel.to_string(),
        arch: ctx.settings.machine.clone(),
    };
    let mut names = Vec::new();
    for (m, v) in ctx.tree.module_versions(None, None) {
        if !ctx.tree.is_installed(&m, &v, &ka) {
            continue;
        }
        let req = ctx.conf_request(ctx.conf_file(&m, &v), &m, &v, &ka);
        let Ok(conf) = crate::conf::load_lenient(&req) else {
            continue;
        };
        if conf.needed_at_boot || ctx.settings.boot_modules.contains(&m) {
            names.extend(
                conf.modules
                    .iter()
                    .filter(|e| !e.exclusion.excluded())
                    .map(|e| e.dest_name.clone()),
            );
        }
    }
    names.sort();
    names.dedup();
    names
}
