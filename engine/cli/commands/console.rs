//! `kiln console`: evaluate expressions against the configuration and state, one per line of
//! input, as Terraform's console (`var.x`, `local.y`, `record.a.output`, functions). Results go
//! to stdout (a sensitive one as `(sensitive value)`), errors to stderr as diagnostics without
//! ending the loop; the end of input (or `exit`) ends it. On a terminal, each line is prompted.

use std::io::{BufRead, IsTerminal, Write};

use super::*;
use crate::cli::VarArgs;

pub async fn console(cx: &Ctx, vars: &VarArgs) -> R {
    let l = load(cx, vars)?;
    let backend = open(&l)?;
    let state = read_state(backend.as_ref()).await?;
    let reg = registry();
    let req = kiln_core::ConsoleRequest {
        config: &l.config,
        state: &state,
        registry: &reg,
        variables: l.vars.clone(),
        workspace: l.workspace()?,
        cwd: cx.dir().to_path_buf(),
    };
    let (console, diags) = kiln_core::Console::new(req);
    let Some(mut console) = console else {
        return Err(Failure::in_sources(&l.config.sources, diags));
    };
    cx.printer.diagnostics(&l.config.sources, &diags);
    let prompt = std::io::stdin().is_terminal();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if prompt {
            cx.printer.note_raw("> ");
            let _ = std::io::stderr().flush();
        }
        let Some(Ok(line)) = lines.next() else { break };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "exit" {
            break;
        }
        match console.eval(line) {
            Ok(v) => cx.printer.data(shown(&v)),
            Err(d) => cx.printer.diagnostics(console.sources(), &d),
        }
    }
    if prompt {
        cx.printer.note("");
    }
    Ok(ExitStatus::Success)
}

/// A result as the console prints it: HCL-like, and `(sensitive value)` for anything that holds
/// a secret, as Terraform's console.
fn shown(v: &Value) -> String {
    if v.contains_sensitive() {
        kiln_views::shown(v, true)
    } else {
        v.to_string()
    }
}
