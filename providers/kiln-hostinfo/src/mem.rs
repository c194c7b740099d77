//! Memory: `MemTotal` of `/proc/meminfo`.

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes in GiB, rounded down to one decimal (a machine never has more than it reports).
pub fn gib(bytes: u64) -> f64 {
    (bytes as f64 / (1u64 << 30) as f64 * 10.0).floor() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo() {
        let text = "MemTotal:       24684084 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_meminfo(text), Some(24684084 * 1024));
        assert_eq!(gib(24684084 * 1024), 23.5);
        assert_eq!(parse_meminfo("nothing"), None);
    }
}
