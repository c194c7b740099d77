//! The rest of a host's description: file systems (`df -PTk`), the OS (`/etc/os-release`) and
//! the CPU model (`/proc/cpuinfo`'s `model name` line, or `lscpu`'s `Model name:`).

use kiln_value::{Decimal, Map, Value};

/// One mounted file system.
#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    pub mount: String,
    pub fs_type: String,
    pub size_gb: f64,
    pub free_gb: f64,
}

impl Disk {
    /// `{mount, type, size_gb, free_gb}` as a kiln value (sizes with one decimal).
    pub fn to_value(&self) -> Value {
        let tenths = |x: f64| Value::Number(Decimal::new((x * 10.0).round() as i64, 1).normalize());
        let m: Map = [
            ("mount".to_string(), Value::from(self.mount.as_str())),
            ("type".to_string(), Value::from(self.fs_type.as_str())),
            ("size_gb".to_string(), tenths(self.size_gb)),
            ("free_gb".to_string(), tenths(self.free_gb)),
        ]
        .into();
        Value::Map(m)
    }
}

/// File systems that hold no data worth reporting.
const PSEUDO_FS: [&str; 12] =
    ["tmpfs", "devtmpfs", "proc", "sysfs", "squashfs", "cgroup", "cgroup2", "efivarfs", "ramfs", "nsfs", "autofs", "fuse.lxcfs"];

fn kib_to_gb(kib: u64) -> f64 {
    (kib as f64 / (1u64 << 20) as f64 * 10.0).round() / 10.0
}

/// `df -PTk`: Filesystem Type 1024-blocks Used Available Capacity Mounted-on. Pseudo file
/// systems, `/boot` and empty file systems are left out.
pub fn parse_df(text: &str) -> Vec<Disk> {
    text.lines()
        .skip_while(|l| !l.starts_with("Filesystem"))
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 7 || PSEUDO_FS.contains(&f[1]) || f[6] == "/boot" || f[6].starts_with("/boot/") {
                return None;
            }
            let size: u64 = f[2].parse().ok()?;
            let free: u64 = f[4].parse().ok()?;
            (size > 0).then(|| Disk {
                mount: f[6..].join(" "),
                fs_type: f[1].to_string(),
                size_gb: kib_to_gb(size),
                free_gb: kib_to_gb(free),
            })
        })
        .collect()
}

/// `PRETTY_NAME` of os-release.
pub fn os_pretty_name(os_release: &str) -> String {
    os_release.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim().trim_matches('"').to_string()).unwrap_or_default()
}

/// The CPU model out of a `model name : ...` (cpuinfo) or `Model name: ...` (lscpu) line: the
/// value after the first `:` of the first line.
pub fn cpu_model(line: &str) -> String {
    line.lines().next().and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_skips_pseudo_file_systems_and_boot() {
        let text = "Filesystem     Type  1024-blocks     Used Available Capacity Mounted on\n\
            /dev/vda1      ext4    264091796 194790928  69301860      74% /\n\
            tmpfs          tmpfs     8192000        0   8192000       0% /dev/shm\n\
            /dev/vda15     vfat       126678     6211    120467       5% /boot/efi\n\
            nas:/export    nfs4   1073741824        0 1073741824      0% /mnt/my share\n";
        let disks = parse_df(text);
        assert_eq!(disks.len(), 2);
        assert_eq!(disks[0], Disk { mount: "/".into(), fs_type: "ext4".into(), size_gb: 251.9, free_gb: 66.1 });
        assert_eq!(disks[1].mount, "/mnt/my share");
        assert_eq!(disks[1].to_value().get("size_gb"), Some(&Value::Number(Decimal::from(1024))));
        assert!(parse_df("").is_empty());
    }

    #[test]
    fn os_and_cpu() {
        assert_eq!(os_pretty_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(os_pretty_name(""), "");
        assert_eq!(cpu_model("model name\t: AMD EPYC 7742 64-Core Processor\n"), "AMD EPYC 7742 64-Core Processor");
        assert_eq!(cpu_model("Model name:            Neoverse-N1\n"), "Neoverse-N1");
        assert_eq!(cpu_model(""), "");
    }
}
