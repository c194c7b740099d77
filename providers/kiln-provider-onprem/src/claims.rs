//! GPU claims: how clusters hold GPUs so that two clusters never share one. A cluster's
//! allocation is recorded on each of its hosts, in `HOST_DIR/claims/`: one file `gpu-INDEX` per
//! GPU it holds, created with `set -o noclobber` (O_EXCL), so two applies racing for the same GPU
//! cannot both win, and one file `member-CLUSTER_ID`. Each file holds the owner as one line of
//! JSON (address, cluster ID, create token).
//!
//! Claims live on the hosts rather than in kiln's state so that every state (another directory,
//! another team) sharing the fleet sees them, and a plan can say who holds what.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who holds a GPU (or belongs to a host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub address: String,
    pub cluster_id: String,
    pub token: String,
}

/// The claims found on one host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostClaims {
    /// GPU index → owner.
    pub gpus: BTreeMap<u32, Claim>,
    /// Clusters with a member file here, by cluster ID.
    pub members: BTreeMap<String, Claim>,
    /// When each member file was written (seconds since the epoch), by cluster ID: when the
    /// cluster took this host.
    pub member_since: BTreeMap<String, u64>,
}

/// Lists claims as `NAME<TAB>JSON<TAB>MTIME` lines (MTIME: seconds since the epoch) after an
/// `@@claims` header; `$1` is the host directory.
pub const LIST: &str = r#"printf '\n@@claims\n'
if [ -d "$1/claims" ]; then
  for f in "$1"/claims/gpu-* "$1"/claims/member-*; do
    [ -f "$f" ] && printf '%s\t%s\t%s\n' "${f##*/}" "$(head -c 4096 "$f" | tr -d '\n')" "$(stat -c %Y "$f" 2>/dev/null || stat -f %m "$f" 2>/dev/null)"
  done
fi
printf '\n@@claims_end\n'
"#;

/// `$1` host directory, `$2` cluster ID, `$3` claim JSON, then GPU indices. Exit 3 (with the
/// claims in the way on stdout, as LIST prints them) when a GPU is already held; nothing is
/// left claimed then.
pub const CLAIM: &str = r#"set -u
d="$1/claims"; id=$2; json=$3; shift 3
mkdir -p "$d" || exit 2
made=""; taken=""
set -o noclobber
for i in "$@"; do
  if { printf '%s\n' "$json" > "$d/gpu-$i"; } 2>/dev/null; then made="$made $i"; else taken="$taken $i"; fi
done
set +o noclobber
if [ -n "$taken" ]; then
  for i in $made; do rm -f "$d/gpu-$i"; done
  for i in $taken; do printf 'gpu-%s\t%s\n' "$i" "$(head -c 4096 "$d/gpu-$i" 2>/dev/null | tr -d '\n')"; done
  exit 3
fi
printf '%s\n' "$json" > "$d/member-$id.tmp" && mv -f "$d/member-$id.tmp" "$d/member-$id"
"#;

/// `$1` host directory, `$2` cluster ID: removes that cluster's files only.
pub const RELEASE: &str = r#"d="$1/claims"; id=$2
[ -d "$d" ] || exit 0
for f in "$d"/gpu-*; do
  [ -f "$f" ] && grep -qF "\"cluster_id\":\"$id\"" "$f" && rm -f "$f"
done
rm -f "$d/member-$id"
exit 0
"#;

impl Claim {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Parses `NAME<TAB>JSON[<TAB>MTIME]` lines (the `@@claims` section, or CLAIM's complaint).
/// The JSON holds no tab (serde_json escapes it).
pub fn parse(text: &str) -> HostClaims {
    let mut out = HostClaims::default();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once('\t') else { continue };
        let (json, mtime) = match rest.split_once('\t') {
            Some((json, t)) => (json, t.trim().parse::<u64>().ok()),
            None => (rest, None),
        };
        let Ok(claim) = serde_json::from_str::<Claim>(json) else { continue };
        if let Some(i) = name.strip_prefix("gpu-").and_then(|i| i.parse().ok()) {
            out.gpus.insert(i, claim);
        } else if let Some(id) = name.strip_prefix("member-") {
            if let Some(t) = mtime {
                out.member_since.insert(id.to_string(), t);
            }
            out.members.insert(id.to_string(), claim);
        }
    }
    out
}

/// The text between `@@claims` and `@@claims_end`.
pub fn section(text: &str) -> &str {
    let Some(start) = text.find("@@claims\n") else { return "" };
    let rest = &text[start + "@@claims\n".len()..];
    rest.find("@@claims_end").map_or(rest, |end| &rest[..end])
}

impl HostClaims {
    /// GPU index → holder address, leaving out what `except` holds.
    pub fn holders(&self, except: &str) -> BTreeMap<u32, String> {
        self.gpus.iter().filter(|(_, c)| c.address != except).map(|(i, c)| (*i, c.address.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listing() {
        let c = Claim { address: "cluster.a".into(), cluster_id: "a-1".into(), token: "t".into() };
        let text = format!("\n@@claims\ngpu-3\t{j}\nmember-a-1\t{j}\ngpu-x\t{j}\nbroken\n\n@@claims_end\n", j = c.to_json());
        let h = parse(section(&text));
        assert_eq!(h.gpus.keys().copied().collect::<Vec<_>>(), vec![3]);
        assert_eq!(h.members.get("a-1"), Some(&c));
        assert!(h.holders("cluster.a").is_empty());
        assert_eq!(h.holders("cluster.b").get(&3).map(String::as_str), Some("cluster.a"));
        assert!(h.member_since.is_empty(), "no time listed");
        let timed = format!("member-a-1\t{}\t1767236400\ngpu-3\t{}\t\n", c.to_json(), c.to_json());
        let h = parse(&timed);
        assert_eq!((h.members.get("a-1"), h.member_since.get("a-1")), (Some(&c), Some(&1767236400)));
        assert!(h.gpus.contains_key(&3), "a missing time is no time");
    }

    #[test]
    fn release_matches_the_json_it_writes() {
        let c = Claim { address: "cluster.a".into(), cluster_id: "a-1".into(), token: "t".into() };
        assert!(c.to_json().contains("\"cluster_id\":\"a-1\""));
    }
}
