//! Markdown building blocks shared by the views: table cells and inline code that survive any
//! text (pipes, backticks, newlines).

/// Text for a table cell: `|` escaped, newlines as `<br>`.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace("\r\n", "<br>").replace('\n', "<br>")
}

/// Inline code for a table cell: backticks, longer than any run inside, and `|` escaped.
pub fn code(s: &str) -> String {
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') { " " } else { "" };
    cell(&format!("{fence}{pad}{s}{pad}{fence}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_keep_tables_whole() {
        assert_eq!(cell("a|b\nc"), "a\\|b<br>c");
        assert_eq!(code("record.a[\"x\"]"), "`record.a[\"x\"]`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("x|y"), "`x\\|y`");
    }
}
