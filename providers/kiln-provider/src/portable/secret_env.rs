//! A job's `secret_env`: environment variables holding secrets (`HF_TOKEN`, `WANDB_API_KEY`),
//! delivered to the job's processes without being written in clear anywhere kiln writes.
//!
//! - State keeps, per key, only a salted digest (`sha256:SALT:HEX`, [`seal`]): a changed value
//!   is still seen at plan ([`plan`]), shows as `secret_env` changing with `(sensitive value)`
//!   (the attribute is sensitive), and replaces the job. The values travel only in the plan the
//!   engine hands the provider's create (and in a saved plan, which is as secret as state).
//!   The create's pending entry, in state while it runs, keeps the digests too (kiln-core's
//!   `pending_planned`), so recovering an interrupted create adopts the job its token made,
//!   else answers gone (the next plan creates it with the configuration's values).
//! - Each provider hands the values to the processes its own way: `local` a mode-0600 file in
//!   the job's directory (0700) that the node's wrapper reads; `onprem` a mode-0600 file in the
//!   node's directory (0700), written over SSH from the script on standard input; Slurm a
//!   mode-0600 file in the job's directory on the shared file system, sourced by the batch
//!   script; `aws` the job's SSM SecureString parameter (with the sensitive `env`), which the
//!   agent reads with the instance's role. Job records, scripts, user data and logs never hold
//!   them.

use std::io::Read;

use kiln_value::{Map, Value};
use sha2::{Digest, Sha256};

/// The attribute's name.
pub const ATTR: &str = "secret_env";

/// Its description.
pub const DESCRIPTION: &str =
    "Environment variables holding secrets (such as HF_TOKEN): delivered to the nodes without writing them in clear; \
     state keeps a salted digest of each";

const PREFIX: &str = "sha256:";

/// Whether `s` is a digest [`seal`] made.
pub fn is_sealed(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(PREFIX) else { return false };
    let Some((salt, hex)) = rest.split_once(':') else { return false };
    salt.len() == 32 && hex.len() == 64 && rest.bytes().all(|b| b == b':' || b.is_ascii_hexdigit())
}

fn digest(salt: &str, key: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b"\0");
    h.update(key.as_bytes());
    h.update(b"\0");
    h.update(value.as_bytes());
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{salt}:{hex}")
}

/// 16 random bytes as hex, from the system's random source.
fn salt() -> String {
    let mut b = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        // No random source: still a salt that differs between jobs.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        b.copy_from_slice(&Sha256::digest(format!("{t}{}", std::process::id()).as_bytes())[..16]);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The values of a job's `secret_env` (its planned value), in name order; an error naming a key
/// whose value is not there in clear (it was planned from state, not from the configuration).
pub fn values(job: &Value) -> Result<Vec<(String, String)>, String> {
    let Some(m) = job.get(ATTR).map(Value::unmarked).and_then(Value::as_map) else { return Ok(Vec::new()) };
    m.iter()
        .map(|(k, v)| {
            let s = v.unmarked().to_template_string().unwrap_or_default();
            if is_sealed(&s) {
                Err(format!("the value of secret_env[\"{k}\"] is not known to this apply"))
            } else {
                Ok((k.clone(), s))
            }
        })
        .collect()
}

/// `job` with each `secret_env` value replaced by its salted digest (one fresh salt per job);
/// digests already there are kept. What a provider returns as state.
pub fn seal(job: Value) -> Value {
    let Value::Map(mut m) = job else { return job };
    if let Some(Value::Map(env)) = m.get(ATTR).map(|v| v.unmarked().clone()) {
        let salt = salt();
        let sealed: Map = env
            .into_iter()
            .map(|(k, v)| {
                let s = v.unmarked().to_template_string().unwrap_or_default();
                let d = if is_sealed(&s) { s } else { digest(&salt, &k, &s) };
                (k, Value::from(d))
            })
            .collect();
        m.insert(ATTR.into(), Value::Map(sealed));
    }
    Value::Map(m)
}

/// Plans `secret_env` against a prior's digests: where every key is the same and each value
/// matches its digest, the planned value is the prior's (no change); otherwise it keeps the
/// configuration's values, which differ from the digests, so the job is replaced (the
/// attribute is `force_new`) and its create gets the values.
pub fn plan(prior: Option<&Value>, planned: &mut Map) {
    let Some(prior) = prior.and_then(|p| p.get(ATTR)).map(Value::unmarked) else { return };
    let Some(before) = prior.as_map() else { return };
    let Some(after) = planned.get(ATTR).map(Value::unmarked).and_then(Value::as_map) else { return };
    if after.values().any(Value::contains_unknown) || before.len() != after.len() {
        return;
    }
    let same = before.iter().all(|(k, d)| {
        let (Some(d), Some(v)) = (d.as_str(), after.get(k).map(Value::unmarked)) else { return false };
        let (Some(salt), Some(v)) = (d.strip_prefix(PREFIX).and_then(|r| r.split_once(':')).map(|(s, _)| s), v.to_template_string()) else {
            return false;
        };
        is_sealed(d) && digest(salt, k, &v) == d
    });
    if same {
        planned.insert(ATTR.into(), prior.clone());
    }
}

/// The file a provider writes the values to, beside the job's scripts, with mode 0600.
pub const FILE: &str = "secret_env.sh";

/// `export K='V'` lines for the values, for a shell to source.
pub fn exports(values: &[(String, String)]) -> String {
    values.iter().filter(|(k, _)| valid_name(k)).map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', r"'\''"))).collect()
}

/// Writes [`exports`] of the values to `path`, created with mode 0600 (an existing file is made
/// 0600 before it is written).
pub fn write_file(path: &std::path::Path, values: &[(String, String)]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(exports(values).as_bytes())?;
    f.sync_all()
}

/// The names a shell takes (`[A-Za-z_][A-Za-z0-9_]*`): a `secret_env` key must be one.
pub fn valid_name(k: &str) -> bool {
    let mut c = k.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// The keys of a configured `secret_env` that are not variable names.
pub fn invalid_names(job: &Value) -> Vec<String> {
    let Some(m) = job.get(ATTR).map(Value::unmarked).and_then(Value::as_map) else { return Vec::new() };
    m.keys().filter(|k| !valid_name(k)).cloned().collect()
}

/// The error for `secret_env` keys that are not variable names (for every provider's
/// `validate`), at `secret_env`.
pub fn validate(job: &Value) -> Option<kiln_diag::Diagnostic> {
    let bad = invalid_names(job);
    (!bad.is_empty()).then(|| {
        kiln_diag::Diagnostic::error("E-JOB-SECRET-ENV", format!("secret_env: {} not an environment variable name", bad.join(", ")))
            .attribute(ATTR)
            .hint("use letters, digits and _, not starting with a digit, such as HF_TOKEN")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(env: &[(&str, &str)]) -> Value {
        let m: Map = env.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
        Value::Map([(ATTR.to_string(), Value::Map(m).mark_if(true))].into_iter().collect())
    }

    #[test]
    fn sealed_state_holds_no_value_and_plans_no_change_until_one_changes() {
        let planned = job(&[("HF_TOKEN", "hf_secret"), ("WANDB_API_KEY", "w")]);
        assert_eq!(values(&planned).unwrap(), [("HF_TOKEN".into(), "hf_secret".into()), ("WANDB_API_KEY".into(), "w".into())]);
        let state = seal(planned.clone());
        let text = state.to_json().to_string();
        assert!(!text.contains("hf_secret"), "{text}");
        let d = state.get(ATTR).unwrap().get("HF_TOKEN").unwrap().as_str().unwrap().to_string();
        assert!(is_sealed(&d), "{d}");
        assert!(values(&state).is_err(), "a digest is not a value");
        assert_eq!(seal(state.clone()), state, "sealing twice keeps the digests");
        // Another job's digest of the same value differs (salted).
        assert_ne!(seal(planned.clone()).get(ATTR), state.get(ATTR));
        // Unchanged: the prior's digests.
        let mut m = planned.as_map().unwrap().clone();
        plan(Some(&state), &mut m);
        assert_eq!(m.get(ATTR), state.get(ATTR));
        // One changed, one added, one removed: the values stay (a change).
        for changed in [
            job(&[("HF_TOKEN", "hf_other"), ("WANDB_API_KEY", "w")]),
            job(&[("HF_TOKEN", "hf_secret"), ("WANDB_API_KEY", "w"), ("X", "1")]),
            job(&[("HF_TOKEN", "hf_secret")]),
        ] {
            let mut m = changed.as_map().unwrap().clone();
            plan(Some(&state), &mut m);
            assert_eq!(m.get(ATTR), changed.get(ATTR));
        }
        // No prior, or a prior without secret_env: unchanged.
        let mut m = planned.as_map().unwrap().clone();
        plan(None, &mut m);
        assert_eq!(m.get(ATTR), planned.get(ATTR));
    }

    #[test]
    fn the_file_is_private_and_sources_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE);
        let values = vec![("A".to_string(), "it's $HOME `x`".to_string())];
        write_file(&path, &values).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let out = std::process::Command::new("bash").arg("-c").arg(format!(". {}; printf %s \"$A\"", path.display())).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $HOME `x`");
    }

    #[test]
    fn names() {
        assert!(valid_name("HF_TOKEN") && valid_name("_x1"));
        assert!(!valid_name("1X") && !valid_name("A-B") && !valid_name(""));
        assert_eq!(invalid_names(&job(&[("OK", "1"), ("NOT-OK", "2")])), ["NOT-OK"]);
        assert!(!is_sealed("sha256:abc") && !is_sealed("hf_x"));
    }
}
