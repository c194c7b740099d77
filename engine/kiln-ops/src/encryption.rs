//! The state codec a configuration asks for: an [`kiln_crypt::Encryptor`] built from
//! `kiln { encryption { ... } }`, or [`kiln_crypt::NoEncryption`] without that block. Key
//! expressions are evaluated with only root variables (and `path.*`) in scope, since state must
//! be decrypted before anything else is known: [`RootVars`], the backend block's resolver.
//! `block.rs` reads the block itself (its diagnostics); `kiln_crypt` holds the keys and the
//! codec, and knows nothing of the language.

mod block;

use std::path::Path;
use std::sync::Arc;

use kiln_config::Config;
use kiln_diag::Diagnostics;
use kiln_eval::Expr;
use kiln_state::Codec;
use kiln_value::Value;

use crate::vars::{EarlyBlock, RootScope, RootVars};

/// The codec for state and saved plans of `config`, with the root variables `vars` (the same
/// resolver as the backend block's). `None` exactly when the diagnostics hold errors; warnings
/// may come with a codec. Environment variables (`key_provider "env"`) come from the process.
pub fn state_codec(config: &Config, vars: &RootVars) -> (Option<Arc<dyn Codec>>, Diagnostics) {
    state_codec_with(config, vars, &|name| std::env::var(name).ok(), kiln_crypt::DEFAULT_ITERATIONS)
}

/// Like [`state_codec`], with environment variables from `env` and a PBKDF2 iteration count
/// for sealing (tests use a low one; everything else the default).
pub fn state_codec_with(
    config: &Config,
    vars: &RootVars,
    env: &dyn Fn(&str) -> Option<String>,
    kdf_iterations: u32,
) -> (Option<Arc<dyn Codec>>, Diagnostics) {
    let Some(block) = config.root.module.settings.as_ref().and_then(|s| s.encryption.as_ref()) else {
        return (Some(Arc::new(kiln_crypt::NoEncryption)), Diagnostics::new());
    };
    let ctx = Context { scope: vars.scope(EarlyBlock::ENCRYPTION), env, dir: vars.root_dir() };
    let (enc, diags) = block::build_with(block, &ctx, kdf_iterations);
    (enc.map(|e| Arc::new(e) as Arc<dyn Codec>), diags)
}

struct Context<'a> {
    scope: RootScope<'a>,
    env: &'a dyn Fn(&str) -> Option<String>,
    dir: &'a Path,
}

impl block::Context for Context<'_> {
    fn eval(&self, expr: &Expr) -> Result<Value, Diagnostics> {
        kiln_eval::eval(expr, &self.scope)
    }

    fn env_var(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    fn base_dir(&self) -> &Path {
        self.dir
    }
}

#[cfg(test)]
mod tests {
    //! The `encryption` block end to end through configuration loading, variable evaluation
    //! and the real encryptor: good blocks encrypt, bad blocks are diagnostics at file:line:col.

    use super::*;
    use kiln_diag::{Diagnostic, Severity};
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// Low PBKDF2 cost for tests (the count is stored in each envelope).
    const ITER: u32 = 1_000;

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(name: &str, hcl: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("kiln-ops-encryption-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("main.kiln.hcl"), hcl).unwrap();
        Dir(d)
    }

    struct Built {
        codec: Option<Arc<dyn Codec>>,
        diags: Diagnostics,
        config: Config,
    }

    fn build(d: &Dir, vars: &[(&str, &str)], env: &[(&str, &str)]) -> Built {
        let (config, load_diags) = kiln_config::load(&d.0);
        let config = config.expect("a config");
        let vars: BTreeMap<String, Value> = vars.iter().map(|(k, v)| (k.to_string(), Value::string(*v))).collect();
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let vars = RootVars::new(&config, &vars, &d.0);
        let (codec, mut diags) = state_codec_with(&config, &vars, &|n| env.get(n).cloned(), ITER);
        let mut all = load_diags;
        all.extend(std::mem::take(&mut diags));
        Built { codec: if all.has_errors() { None } else { codec }, diags: all, config }
    }

    impl Built {
        fn codec(&self) -> &Arc<dyn Codec> {
            self.codec.as_ref().unwrap_or_else(|| panic!("expected a codec, got {:#?}", self.diags))
        }

        /// `(code, "main.kiln.hcl:LINE:COL")` of each diagnostic of `severity`.
        fn list(&self, severity: Severity) -> Vec<(&'static str, String)> {
            self.diags
                .iter()
                .filter(|d| d.severity == severity)
                .map(|d| {
                    let at = d.primary.as_ref().map_or("-".to_string(), |l| {
                        let loc = self.config.sources.location(l.span.file, l.span.range.start);
                        loc.rsplit('/').next().unwrap_or_default().to_string()
                    });
                    (d.code, at)
                })
                .collect()
        }

        fn errors(&self) -> Vec<(&'static str, String)> {
            self.list(Severity::Error)
        }

        fn error(&self, code: &str) -> &Diagnostic {
            self.diags.iter().find(|d| d.code == code).unwrap_or_else(|| panic!("no {code} in {:#?}", self.diags))
        }
    }

    const ROTATION: &str = r#"
variable "state_passphrase" {
  sensitive = true
}
variable "old_passphrase" {
  sensitive = true
  default   = "the old passphrase, from a default"
}

kiln {
  encryption {
    key_provider "passphrase" "main" { passphrase = var.state_passphrase }
    key_provider "passphrase" "old"  { passphrase = var.old_passphrase }
    method "aes_gcm" { keys = key_provider.passphrase.main }
    fallback { keys = key_provider.passphrase.old }
  }
}
"#;

    #[test]
    fn rotation_block_reads_old_and_new_and_writes_new() {
        let d = dir("rotation", ROTATION);
        let rotating = build(&d, &[("state_passphrase", "the new passphrase for state")], &[]);
        assert!(rotating.diags.is_empty(), "{:#?}", rotating.diags);
        assert_eq!(rotating.codec().name(), "aes_gcm");

        // Something written with the old passphrase alone (before rotation).
        let old = dir(
            "rotation-old",
            "kiln {\n  encryption {\n    key_provider \"passphrase\" { passphrase = \"the old passphrase, from a default\" }\n    method \"aes_gcm\" {}\n  }\n}\nvariable \"x\" {}\n",
        );
        let old = build(&old, &[], &[]);
        let before = old.codec().seal(b"{\"serial\":1}").unwrap();
        assert_eq!(rotating.codec().open(&before, "state").unwrap(), b"{\"serial\":1}");
        let after = rotating.codec().seal(b"{\"serial\":2}").unwrap();
        // The new key alone reads what rotation wrote; the old key does not.
        let new_only = dir(
            "rotation-new",
            "variable \"k\" {}\nkiln {\n  encryption {\n    key_provider \"passphrase\" { passphrase = var.k }\n    method \"aes_gcm\" {}\n  }\n}\n",
        );
        let new_only = build(&new_only, &[("k", "the new passphrase for state")], &[]);
        assert_eq!(new_only.codec().open(&after, "state").unwrap(), b"{\"serial\":2}");
        assert!(old.codec().open(&after, "state").is_err());
        assert!(new_only.codec().open(&before, "state").is_err());
    }

    #[test]
    fn no_block_means_no_encryption_that_refuses_encrypted_state() {
        let d = dir("none", "variable \"x\" {}\nkiln {\n  required_version = \">= 0.1\"\n}\n");
        let b = build(&d, &[], &[]);
        assert_eq!(b.codec().name(), "plain");
        let d2 = dir("none-enc", "kiln {\n  encryption {\n    key_provider \"passphrase\" { passphrase = \"sixteen chars!!!\" }\n    method \"aes_gcm\" {}\n  }\n}\nvariable \"x\" {}\n");
        let sealed = build(&d2, &[], &[]).codec().seal(b"{}").unwrap();
        let err = b.codec().open(&sealed, ".kiln/state.json").unwrap_err().to_string();
        assert!(err.contains("add the `encryption` block"), "{err}");
    }

    #[test]
    fn env_and_file_key_providers() {
        let key = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio="; // base64 of 32 `*` bytes
        let d = dir(
            "env-file",
            r#"
variable "unused" {}
kiln {
  encryption {
    key_provider "env" "ci" { variable = "KILN_STATE_KEY" }
    key_provider "file" "disk" { path = "state.key" }
    method "aes_gcm" { keys = key_provider.env.ci }
    fallback { keys = [key_provider.file.disk] }
  }
}
"#,
        );
        std::fs::write(d.0.join("state.key"), "a passphrase kept in a file\n").unwrap();
        let b = build(&d, &[], &[("KILN_STATE_KEY", key)]);
        let sealed = b.codec().seal(b"{}").unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("\"kdf\""), "a base64 32-byte key is used directly");
        assert_eq!(b.codec().open(&sealed, "x").unwrap(), b"{}");

        let file_only =
            dir("file-only", "variable \"u\" {}\nkiln {\n  encryption {\n    key_provider \"file\" { path = \"${path.module}/k\" }\n    method \"aes_gcm\" {}\n  }\n}\n");
        std::fs::write(file_only.0.join("k"), "a passphrase kept in a file\n").unwrap();
        let by_file = build(&file_only, &[], &[]).codec().seal(b"{\"f\":1}").unwrap();
        assert_eq!(b.codec().open(&by_file, "x").unwrap(), b"{\"f\":1}", "the file key is a fallback");

        // An unset environment variable is an error at the `variable` attribute.
        let unset = build(&d, &[], &[]);
        assert_eq!(unset.errors(), [("E-ENCRYPTION-KEY", "main.kiln.hcl:5:42".to_string())]);
        assert!(unset.error("E-ENCRYPTION-KEY").summary.contains("`KILN_STATE_KEY` is not set"));
        // A missing key file too.
        std::fs::remove_file(d.0.join("state.key")).unwrap();
        let missing = build(&d, &[], &[("KILN_STATE_KEY", key)]);
        assert_eq!(missing.errors(), [("E-ENCRYPTION-KEY", "main.kiln.hcl:6:41".to_string())]);
        // A too short value in the environment.
        let short = build(&file_only, &[], &[]);
        assert!(short.diags.is_empty());
        std::fs::write(file_only.0.join("k"), "short").unwrap();
        let short = build(&file_only, &[], &[]);
        assert_eq!(short.errors(), [("E-ENCRYPTION-KEY", "main.kiln.hcl:4:34".to_string())]);
        assert!(short.error("E-ENCRYPTION-KEY").detail.as_deref().unwrap().contains("5 character(s)"));
    }

    #[test]
    fn allow_plaintext_migrates_an_unencrypted_state() {
        let hcl = |allow: &str| {
            format!("variable \"k\" {{}}\nkiln {{\n  encryption {{\n    key_provider \"passphrase\" {{ passphrase = var.k }}\n    method \"aes_gcm\" {{}}\n    fallback {{ allow_plaintext = {allow} }}\n  }}\n}}\n")
        };
        let on = dir("plain-on", &hcl("true"));
        let b = build(&on, &[("k", "sixteen chars or more")], &[]);
        assert_eq!(b.codec().open(b"{\"serial\":3}", "x").unwrap(), b"{\"serial\":3}");
        let off = dir("plain-off", &hcl("false"));
        let strict = build(&off, &[("k", "sixteen chars or more")], &[]);
        let err = strict.codec().open(b"{\"serial\":3}", ".kiln/state.json").unwrap_err().to_string();
        assert!(err.contains("allow_plaintext = true"), "{err}");
        // What the migrating codec wrote, the strict one reads.
        let sealed = b.codec().seal(b"{\"serial\":4}").unwrap();
        assert_eq!(strict.codec().open(&sealed, "x").unwrap(), b"{\"serial\":4}");
    }

    #[test]
    fn bad_blocks_are_diagnostics_at_their_location() {
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            ("unknown-method", "key_provider \"passphrase\" { passphrase = var.k }\n    method \"aes_cbc\" {}", &[("E-ENCRYPTION-METHOD", "5:5")]),
            ("no-method", "key_provider \"passphrase\" { passphrase = var.k }", &[("E-ENCRYPTION-METHOD", "3:3")]),
            ("no-passphrase", "key_provider \"passphrase\" {}\n    method \"aes_gcm\" {}", &[("E-ENCRYPTION-KEY-MISSING", "4:5")]),
            ("short", "key_provider \"passphrase\" { passphrase = \"too short\" }\n    method \"aes_gcm\" {}", &[("E-ENCRYPTION-KEY", "4:46")]),
            ("unknown-provider", "key_provider \"kms\" \"x\" {}\n    method \"aes_gcm\" {}", &[("E-ENCRYPTION-KEY-PROVIDER", "4:5"), ("E-ENCRYPTION-NO-KEY", "3:3")]),
            ("no-key", "method \"aes_gcm\" {}", &[("E-ENCRYPTION-NO-KEY", "3:3")]),
            (
                "undeclared-key",
                "key_provider \"passphrase\" \"a\" { passphrase = var.k }\n    method \"aes_gcm\" { keys = key_provider.passphrase.b }",
                &[("E-ENCRYPTION-KEYS", "5:31")],
            ),
            (
                "ambiguous",
                "key_provider \"passphrase\" \"a\" { passphrase = var.k }\n    key_provider \"passphrase\" \"b\" { passphrase = var.k }\n    method \"aes_gcm\" {}",
                &[("E-ENCRYPTION-KEYS", "6:5")],
            ),
            ("not-a-ref", "key_provider \"passphrase\" { passphrase = var.k }\n    method \"aes_gcm\" { keys = \"main\" }", &[("E-ENCRYPTION-KEYS", "5:31")]),
            (
                "two-primary",
                "key_provider \"passphrase\" \"a\" { passphrase = var.k }\n    method \"aes_gcm\" { keys = [key_provider.passphrase.a, key_provider.passphrase.a] }",
                &[("E-ENCRYPTION-KEYS", "5:31")],
            ),
            ("local-ref", "key_provider \"passphrase\" { passphrase = local.k }\n    method \"aes_gcm\" {}", &[("E-ENCRYPTION-REF", "4:46")]),
            ("undeclared-var", "key_provider \"passphrase\" { passphrase = var.nope }\n    method \"aes_gcm\" {}", &[("E-REF-UNDECLARED", "4:46")]),
            ("missing-var", "key_provider \"passphrase\" { passphrase = var.unset }\n    method \"aes_gcm\" {}", &[("E-VAR-MISSING", "4:46")]),
            ("number", "key_provider \"passphrase\" { passphrase = 12 }\n    method \"aes_gcm\" {}", &[("E-ENCRYPTION-TYPE", "4:46")]),
            (
                "plaintext-type",
                "key_provider \"passphrase\" { passphrase = var.k }\n    method \"aes_gcm\" {}\n    fallback { allow_plaintext = \"yes\" }",
                &[("E-ENCRYPTION-TYPE", "6:34")],
            ),
            ("unknown-attr", "enabled = true\n    key_provider \"passphrase\" { passphrase = var.k }\n    method \"aes_gcm\" {}", &[("E-UNKNOWN-ATTR", "4:5")]),
            ("unknown-block", "key_provider \"passphrase\" { passphrase = var.k }\n    method \"aes_gcm\" {}\n    state {}", &[("E-UNKNOWN-BLOCK", "6:5")]),
            (
                "provider-attr",
                "key_provider \"passphrase\" {\n      passphrase = var.k\n      pass = 1\n    }\n    method \"aes_gcm\" {}",
                &[("E-UNKNOWN-ATTR", "6:7")],
            ),
            (
                "dup-provider",
                "key_provider \"passphrase\" { passphrase = var.k }\n    key_provider \"passphrase\" { passphrase = var.k }\n    method \"aes_gcm\" {}",
                &[("E-DUPLICATE", "5:5")],
            ),
            ("dup-method", "key_provider \"passphrase\" { passphrase = var.k }\n    method \"aes_gcm\" {}\n    method \"aes_gcm\" {}", &[("E-DUPLICATE", "6:5")]),
            ("method-labels", "key_provider \"passphrase\" { passphrase = var.k }\n    method {}", &[("E-BLOCK-LABELS", "5:5")]),
        ];
        for (name, inner, want) in cases {
            let hcl = format!("variable \"k\" {{}}\nkiln {{\n  encryption {{\n    {inner}\n  }}\n}}\nvariable \"unset\" {{}}\n");
            let d = dir(name, &hcl);
            let b = build(&d, &[("k", "a passphrase that is long enough")], &[]);
            let want: Vec<(&str, String)> = want.iter().map(|(c, at)| (*c, format!("main.kiln.hcl:{at}"))).collect();
            assert_eq!(b.errors(), want, "case {name}:\n{hcl}");
            assert!(b.codec.is_none(), "case {name}");
            for d in b.diags.iter() {
                assert!(d.hint.is_some(), "case {name}: {d:?} has no hint");
                let text = format!("{d:?}");
                assert!(!text.contains("a passphrase that is long enough") && !text.contains("too short"), "case {name}: key in {text}");
            }
        }
    }

    #[test]
    fn kiln_block_structure_errors() {
        let dup = dir("dup-encryption", "variable \"k\" {}\nkiln {\n  encryption {}\n  encryption {}\n}\n");
        let b = build(&dup, &[], &[]);
        assert!(b.errors().contains(&("E-DUPLICATE", "main.kiln.hcl:4:3".to_string())), "{:?}", b.errors());
        let labels = dir("labels-encryption", "variable \"k\" {}\nkiln {\n  encryption \"x\" {}\n}\n");
        assert_eq!(build(&labels, &[], &[]).errors(), [("E-BLOCK-LABELS", "main.kiln.hcl:3:3".to_string())]);
    }

    #[test]
    fn unused_providers_and_empty_fallbacks_are_warnings() {
        let d = dir(
            "warnings",
            "variable \"k\" {}\nkiln {\n  encryption {\n    key_provider \"passphrase\" \"a\" { passphrase = var.k }\n    key_provider \"env\" \"b\" { variable = \"NOT_READ\" }\n    method \"aes_gcm\" { keys = key_provider.passphrase.a }\n    fallback {}\n  }\n}\n",
        );
        let b = build(&d, &[("k", "a passphrase that is long enough")], &[]);
        assert!(b.errors().is_empty(), "an unused env provider is not read: {:?}", b.errors());
        assert_eq!(
            b.list(Severity::Warning),
            [("W-ENCRYPTION-EMPTY-FALLBACK", "main.kiln.hcl:7:5".to_string()), ("W-ENCRYPTION-UNUSED", "main.kiln.hcl:5:5".to_string())]
        );
        assert_eq!(b.codec().name(), "aes_gcm");
    }

    #[test]
    fn passphrases_from_sensitive_variables_never_show_in_debug() {
        let d = dir("debug", ROTATION);
        let b = build(&d, &[("state_passphrase", "the new passphrase for state")], &[]);
        let text = format!("{:?}", b.codec());
        assert!(!text.contains("the new passphrase") && !text.contains("the old passphrase"), "{text}");
        assert!(text.contains("key_provider.passphrase.main") && text.contains("key_provider.passphrase.old"), "{text}");
    }
}
