//! The man page, `--help` and the shell completions against the parser's own tables
//! (actions, options), the framework.conf and dkms.conf variables dkms reads, and the
//! exit codes: none of them may lack what the program accepts.

use std::path::Path;
use std::process::Command;

use dkms::cli::{Action, OPTIONS};

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The man page as words, roff's `\-` read as `-`.
fn man_page() -> String {
    repo("man/dkms.8").replace("\\-", "-")
}

/// Every spelling of every option and every action.
fn every_word() -> Vec<&'static str> {
    let mut words: Vec<&'static str> = Action::ALL.iter().map(|a| a.name()).collect();
    words.extend(OPTIONS.iter().flat_map(|o| o.names.iter().copied()));
    words
}

#[test]
fn the_man_page_names_every_action_option_setting_directive_and_exit_code() {
    let man = man_page();
    let missing: Vec<&str> = every_word()
        .into_iter()
        .chain(dkms::framework::FRAMEWORK_VARIABLES.iter().copied())
        .chain(dkms::conf::eval::DIRECTIVES.iter().copied())
        .filter(|w| !man.contains(w))
        .collect();
    assert!(missing.is_empty(), "missing from man/dkms.8: {missing:?}");
    for a in Action::ALL {
        assert!(
            man.contains(&format!("\n.B {}\n", a.name())),
            "{} has no entry",
            a.name()
        );
    }
    let exit = man.split(".SH EXIT STATUS").nth(1).unwrap();
    for line in repo("src/exit.rs").lines() {
        if let Some(code) = line
            .strip_prefix("pub const ")
            .and_then(|l| l.split("= ").nth(1))
        {
            let code = code.trim_end_matches(';');
            assert!(
                exit.contains(&format!("\n.B {code}\n")),
                "exit code {code} undocumented"
            );
        }
    }
}

#[test]
fn the_man_page_is_clean_roff() {
    let out = Command::new("groff")
        .args(["-ww", "-z", "-man"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/dkms.8"))
        .output()
        .expect("groff (groff-base, installed by .ci/install-deps)");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn help_lists_every_action_and_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_dkms"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = every_word()
        .into_iter()
        .filter(|w| !help.contains(w))
        .collect();
    assert!(missing.is_empty(), "missing from --help: {missing:?}");
}

#[test]
fn every_completion_offers_every_action_and_option() {
    for file in [
        "hooks/bash-completion",
        "hooks/zsh-completion",
        "hooks/fish-completion",
    ] {
        let text = repo(file);
        let missing: Vec<&str> = every_word()
            .into_iter()
            .filter(|w| {
                !text
                    .split(|c: char| c.is_whitespace() || "'\"(){}[]:=|".contains(c))
                    .any(|t| t == *w || t == w.trim_start_matches('-'))
            })
            .collect();
        assert!(missing.is_empty(), "{file} lacks {missing:?}");
    }
}

/// A root with `comp/2.0` added and a kernel, and a PATH whose `dkms` is ours.
fn completion_root() -> (crate::common::Root, String) {
    let root = crate::common::Root::new();
    root.fake_kernel("6.1.0-1-amd64", "")
        .source("comp", "2.0", &crate::common::simple_conf("comp", "2.0"))
        .added("comp", "2.0");
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dkms"), bin.join("dkms")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    (root, path)
}

fn shell(root: &crate::common::Root, path: &str, program: &str, script: &str) -> Vec<String> {
    let out = Command::new(program)
        .arg("-c")
        .arg(script)
        .env("PATH", path)
        .env("DKMS_SYSROOT", root.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    lines.sort();
    lines
}

#[test]
#[cfg_attr(not(dkms_host_fish), ignore = "needs fish (.ci/install-deps)")]
fn fish_completes_actions_options_modules_and_kernels() {
    if !crate::common::host_ready(&[crate::common::Needs::Fish]) {
        return;
    }
    let (root, path) = completion_root();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/fish-completion");
    let complete = |line: &str| {
        shell(
            &root,
            &path,
            "fish",
            &format!("source {}; complete -C '{line}'", file.display()),
        )
    };
    assert_eq!(complete("dkms sta"), ["status"]);
    assert_eq!(complete("dkms status --js"), ["--json"]);
    assert_eq!(complete("dkms remove co"), ["comp/2.0"]);
    assert_eq!(complete("dkms install -k 6.1"), ["6.1.0-1-amd64"]);
}

#[test]
#[cfg_attr(not(dkms_host_zsh), ignore = "needs zsh (.ci/install-deps)")]
fn zsh_completes_actions_options_modules_and_kernels() {
    if !crate::common::host_ready(&[crate::common::Needs::Zsh]) {
        return;
    }
    let (root, path) = completion_root();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/zsh-completion");
    // compadd offers candidates; here it prints those that fit the word being completed.
    let complete = |line: &str| {
        let words: Vec<String> = line.split(' ').map(|w| format!("'{w}'")).collect();
        shell(
            &root,
            &path,
            "zsh",
            &format!(
                "compadd() {{ local w; for w in \"${{@:#--}}\"; do [[ $w == ${{words[CURRENT]}}* ]] && print -r -- $w; done; return 0 }}; \
                 words=({}); CURRENT={}; source {}",
                words.join(" "),
                words.len(),
                file.display()
            ),
        )
    };
    assert_eq!(complete("dkms sta"), ["status"]);
    assert_eq!(complete("dkms status --js"), ["--json"]);
    assert_eq!(complete("dkms remove co"), ["comp/2.0"]);
    assert_eq!(complete("dkms install -k 6.1"), ["6.1.0-1-amd64"]);
}

#[test]
fn the_shipped_framework_conf_documents_every_setting_and_changes_nothing() {
    let text = repo("etc/framework.conf");
    for name in dkms::framework::FRAMEWORK_VARIABLES {
        assert!(
            text.contains(&format!("# {name}=")),
            "{name} is not documented"
        );
    }
    assert!(
        text.lines().all(|l| l.is_empty() || l.starts_with('#')),
        "every setting is commented out: the defaults apply"
    );
}

#[test]
fn help_and_version_into_a_closed_pipe_end_quietly() {
    for arg in ["--help", "--version"] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dkms"))
            .arg(arg)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).as_ref()
            ),
            (Some(0), ""),
            "{arg}"
        );
    }
}
