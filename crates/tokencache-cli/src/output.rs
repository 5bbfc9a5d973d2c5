//! Standard output that a closed pipe ends quietly: `tokencache inspect big.json | head`
//! stops when `head` has had enough, instead of panicking as `println!` does.

use std::io::Write as _;

/// Writes one line to standard output. When the reader has gone (a broken pipe) the process
/// ends with status 0 at once: everything the verb did is done by the time it prints, and
/// nobody is left to read the rest.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{args}").and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("tokencache: cannot write to standard output: {e}");
            std::process::exit(2);
        }
    }
}

/// `println!` for the CLI's results, through [`line`] (visible in every module after
/// `output`, which `main.rs` declares with `#[macro_use]`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
