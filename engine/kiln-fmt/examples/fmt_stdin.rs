//! Developer tool: formats HCL read from standard input and writes it to
//! standard output (`cargo run -p kiln-fmt --example fmt_stdin < file.hcl`),
//! handy for comparing with `terraform fmt -`.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut src = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut src) {
        let _ = writeln!(std::io::stderr(), "reading stdin: {e}");
        return ExitCode::from(2);
    }
    match kiln_fmt::format_source(&src) {
        Ok(out) => {
            let _ = std::io::stdout().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{e}");
            ExitCode::from(1)
        }
    }
}
