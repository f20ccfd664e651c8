//! What runs after the modules of a kernel changed: `modprobe_on_install` (running
//! kernel only) and the framework's `post_transaction` command (3.2+), logged to
//! `<dkms_tree>/post_transaction.log` in make.log's entry format. Neither runs when a
//! request changed nothing (every module already installed, say).

use super::Context;
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
