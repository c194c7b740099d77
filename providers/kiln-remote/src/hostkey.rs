//! Host keys: what a `host_key` attribute may hold (a public key line such as
//! `ssh-ed25519 AAAA...`, or a fingerprint `SHA256:...`), OpenSSH fingerprints of keys, the
//! fingerprint a host presented as found in ssh's output, and known_hosts lines.

use base64::Engine;
use sha2::{Digest, Sha256};

/// A host's expected key, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKey {
    /// `ALGORITHM BASE64` (a comment after them is dropped).
    Key { algorithm: String, blob: String },
    /// `SHA256:...`: the full key is fetched with ssh-keyscan and must match.
    Fingerprint(String),
    /// Not configured: every connection is refused, showing the fingerprint the host presents.
    Missing,
    /// Not configured, and the user's own known_hosts files decide (still strictly: a host they
    /// do not know is refused). Providers choose this in place of [`HostKey::Missing`].
    UserKnownHosts,
}

impl HostKey {
    /// Parses a `host_key` value; `None` gives [`HostKey::Missing`].
    pub fn parse(s: Option<&str>) -> Result<HostKey, String> {
        let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else { return Ok(HostKey::Missing) };
        if s.starts_with("SHA256:") {
            return Ok(HostKey::Fingerprint(s.to_string()));
        }
        let mut words = s.split_whitespace();
        let (Some(algorithm), Some(blob)) = (words.next(), words.next()) else {
            return Err(format!("`{s}` is neither a public key (\"ssh-ed25519 AAAA...\") nor a fingerprint (\"SHA256:...\")"));
        };
        fingerprint(blob).map_err(|e| format!("the key `{algorithm} {blob}` is not valid: {e}"))?;
        Ok(HostKey::Key { algorithm: algorithm.to_string(), blob: blob.to_string() })
    }

    /// The expected fingerprint (`None` when missing).
    pub fn fingerprint(&self) -> Option<String> {
        match self {
            HostKey::Key { blob, .. } => fingerprint(blob).ok(),
            HostKey::Fingerprint(f) => Some(f.clone()),
            HostKey::Missing | HostKey::UserKnownHosts => None,
        }
    }

    /// What was expected instead of a key the host presented, for messages: `the configured
    /// host_key is SHA256:...`.
    pub fn expected(&self) -> String {
        match self {
            HostKey::UserKnownHosts => "not the key ~/.ssh/known_hosts holds for it".to_string(),
            HostKey::Missing => "no host_key is configured".to_string(),
            _ => format!("the configured host_key is {}", self.fingerprint().unwrap_or_default()),
        }
    }
}

/// OpenSSH's SHA256 fingerprint of a base64 key blob: `SHA256:` + unpadded base64 of the digest.
pub fn fingerprint(blob_b64: &str) -> Result<String, String> {
    let blob = base64::engine::general_purpose::STANDARD.decode(blob_b64.trim()).map_err(|e| e.to_string())?;
    if blob.len() < 8 {
        return Err("too short for a public key".into());
    }
    let digest = Sha256::digest(&blob);
    Ok(format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)))
}

/// The first `SHA256:...` fingerprint in ssh's output: the key the remote host sent, as printed
/// by `REMOTE HOST IDENTIFICATION HAS CHANGED` or by `debug1: Server host key: ...`.
pub fn presented_fingerprint(ssh_output: &str) -> Option<String> {
    let at = ssh_output.find("SHA256:")?;
    let fp: String = ssh_output[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '+' | '/')).collect();
    (fp.len() > "SHA256:".len()).then_some(fp)
}

/// The key type the host presented (`ssh-ed25519`), from `debug1: Server host key: TYPE SHA256:...`.
pub fn presented_type(ssh_output: &str) -> Option<String> {
    let line = ssh_output.lines().find(|l| l.contains("Server host key:"))?;
    line.split("Server host key:").nth(1)?.split_whitespace().next().map(str::to_string)
}

/// Whether ssh refused the host's key (changed, unknown, or mismatched).
pub fn is_host_key_failure(ssh_output: &str) -> bool {
    ["Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED", "host key is known", "HOST KEY VERIFICATION FAILED"]
        .iter()
        .any(|m| ssh_output.contains(m))
}

/// `ALIAS ALGORITHM BLOB`.
pub fn known_hosts_line(alias: &str, algorithm: &str, blob: &str) -> String {
    format!("{alias} {algorithm} {blob}\n")
}

/// `(algorithm, blob)` pairs of `ssh-keyscan` output (comment lines skipped).
pub fn parse_keyscan(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (_host, algorithm, blob) = (w.next()?, w.next()?, w.next()?);
            Some((algorithm.to_string(), blob.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real ed25519 host key; `ssh-keygen -lf` prints the fingerprint below for it.
    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIG+aGv1ku/54A8fhpR9bEnfynvYVzGyeCqmcuE1oj9f5";
    const FP: &str = "SHA256:Jx4uEpIeKykJTFgm7W/OU0OYWigni1CzJ4nllXC4Ph4";

    #[test]
    fn fingerprints_match_ssh_keygen() {
        assert_eq!(fingerprint(KEY).as_deref(), Ok(FP));
        assert!(fingerprint("not base64!").is_err());
    }

    #[test]
    fn parses_configured_keys() {
        let k = HostKey::parse(Some(&format!("ssh-ed25519 {KEY} root@gpu-01"))).unwrap();
        assert_eq!(k, HostKey::Key { algorithm: "ssh-ed25519".into(), blob: KEY.into() });
        assert_eq!(k.fingerprint().as_deref(), Some(FP));
        assert_eq!(HostKey::parse(Some(FP)).unwrap(), HostKey::Fingerprint(FP.into()));
        assert_eq!(HostKey::parse(None).unwrap(), HostKey::Missing);
        assert!(HostKey::parse(Some("ssh-ed25519")).is_err());
        assert!(HostKey::parse(Some("ssh-ed25519 ###")).is_err());
        assert!(HostKey::parse(Some("nonsense")).is_err());
        assert_eq!(HostKey::parse(Some("  ")).unwrap(), HostKey::Missing);
    }

    #[test]
    fn both_forms_name_the_same_key() {
        let full = HostKey::parse(Some(&format!("ssh-ed25519 {KEY}"))).unwrap();
        let fp = HostKey::parse(Some(FP)).unwrap();
        assert_eq!(full.fingerprint(), fp.fingerprint());
        assert_eq!(full.expected(), format!("the configured host_key is {FP}"));
        assert_eq!(fp.expected(), format!("the configured host_key is {FP}"));
        assert_eq!(HostKey::UserKnownHosts.fingerprint(), None);
    }

    #[test]
    fn finds_the_presented_fingerprint() {
        let changed = "@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
            The fingerprint for the ED25519 key sent by the remote host is\nSHA256:abc+/def123.\n\
            Please contact your system administrator.\nHost key verification failed.\n";
        assert_eq!(presented_fingerprint(changed).as_deref(), Some("SHA256:abc+/def123"));
        assert!(is_host_key_failure(changed));
        let debug = "debug1: Server host key: ssh-ed25519 SHA256:xyz\n";
        assert_eq!(presented_fingerprint(debug).as_deref(), Some("SHA256:xyz"));
        assert_eq!(presented_type(debug).as_deref(), Some("ssh-ed25519"));
        assert_eq!(presented_fingerprint("ssh: connect to host x port 22: Connection refused"), None);
    }

    #[test]
    fn keyscan_lines() {
        let out = "# 127.0.0.1:22 SSH-2.0-OpenSSH_9.2p1\n[127.0.0.1]:2221 ssh-ed25519 AAAA\n";
        assert_eq!(parse_keyscan(out), vec![("ssh-ed25519".to_string(), "AAAA".to_string())]);
    }
}
