//! The `dkms` binary: all behaviour lives in the library.

fn main() {
    // Files and directories we create must be readable by anyone (the original's umask).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    // Arguments are bytes (`args_os`): a path need not be UTF-8.
    std::process::exit(dkms::run(std::env::args_os().skip(1)));
}
