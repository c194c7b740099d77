//! The PostgreSQL these tests run against: `tests/harness/postgres/start.sh` (a throwaway
//! cluster on 127.0.0.1:$KILN_PG_PORT, default 55433), run once per test binary. Each test uses
//! its own schema, so tests run in parallel without interfering. These tests never skip: when
//! PostgreSQL cannot be installed or started, they fail saying why.

use std::path::Path;
use std::sync::OnceLock;

/// The connection URL of the test cluster, started on first use.
pub fn url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/harness/postgres/start.sh");
        let out =
            std::process::Command::new("bash").arg(&script).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}): {}\nneeded: Debian's postgresql package (installed by the script when run as root)",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string()
    })
}

/// A fresh schema name.
pub fn schema(name: &str) -> String {
    format!("t_{name}_{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}
