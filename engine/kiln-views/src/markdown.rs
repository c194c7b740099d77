//! Markdown building blocks shared by the views: table cells and inline code that survive any
//! text (pipes, backticks, newlines), and [`Section`]s shortened by whole items to fit a size
//! (a pull-request comment's limit); [`plan`] is the plan as a pull-request comment.

pub mod plan;

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

/// A part of a markdown text that can be shortened: whole items are left out from the end, and
/// a line says what was left out.
pub struct Section {
    /// Shown whenever the section is (a heading, a total); empty with no items: no section.
    pub title: String,
    /// Shown before the first item (a table's header).
    pub head: String,
    pub items: Vec<String>,
    /// What the items from index `cut` on leave out, when they are left out
    /// (`"\n… and 30 more changes\n"`).
    pub more: Box<dyn Fn(usize) -> String>,
}

impl Section {
    /// A section that is never shortened.
    pub fn whole(text: String) -> Section {
        Section { title: text, head: String::new(), items: vec![], more: Box::new(|_| String::new()) }
    }

    /// The section with its first `k` items.
    pub fn render(&self, k: usize) -> String {
        let mut out = self.title.clone();
        if k > 0 {
            out.push_str(&self.head);
            self.items[..k].iter().for_each(|i| out.push_str(i));
        }
        if k < self.items.len() {
            out.push_str(&(self.more)(k));
        }
        out
    }

    /// Bytes of the section with its first `k` items (bytes bound characters and UTF-16 units).
    fn len(&self, k: usize) -> usize {
        let items: usize = self.items[..k].iter().map(String::len).sum();
        let more = if k < self.items.len() { (self.more)(k).len() } else { 0 };
        self.title.len() + if k > 0 { self.head.len() + items } else { 0 } + more
    }

    /// The most items that keep the section within `budget` bytes (0 when none do: the title
    /// and the line saying what was left out are shown anyway).
    fn fit(&self, budget: usize) -> usize {
        let n = self.items.len();
        if self.len(n) <= budget {
            return n;
        }
        let base = self.title.len() + self.head.len();
        let mut used = base;
        let mut best = 0;
        for k in 1..n {
            used += self.items[k - 1].len();
            if used > budget {
                break;
            }
            if used + (self.more)(k).len() <= budget {
                best = k;
            }
        }
        best
    }
}

/// How many items of each section to show so that together they stay within `budget` bytes,
/// shared fairly: the smallest sections are shown whole first, and each larger one gets an equal
/// share of what is left (then gives back what it does not use).
pub fn fit(sections: &[Section], budget: usize) -> Vec<usize> {
    let mut shown: Vec<usize> = sections.iter().map(|s| s.items.len()).collect();
    let mut order: Vec<usize> = (0..sections.len()).collect();
    let full: Vec<usize> = sections.iter().map(|s| s.len(s.items.len())).collect();
    order.sort_by_key(|&i| full[i]);
    let mut left = budget;
    for (done, &i) in order.iter().enumerate() {
        let share = left / (order.len() - done);
        let k = if full[i] <= share { sections[i].items.len() } else { sections[i].fit(share) };
        shown[i] = k;
        left = left.saturating_sub(sections[i].len(k));
    }
    shown
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

    fn section(title: &str, items: usize) -> Section {
        Section {
            title: title.into(),
            head: "| h |\n".into(),
            items: (0..items).map(|i| format!("| {i:04} |\n")).collect(),
            more: Box::new(move |k| format!("… and {} more\n", items - k)),
        }
    }

    #[test]
    fn sections_are_shortened_by_whole_items_within_the_budget() {
        let s = section("T\n", 100);
        assert_eq!(s.render(2), "T\n| h |\n| 0000 |\n| 0001 |\n… and 98 more\n");
        assert_eq!(s.render(0), "T\n… and 100 more\n");
        assert_eq!(s.fit(10_000), 100);
        let k = s.fit(100);
        assert!(s.render(k).len() <= 100 && s.render(k + 1).len() > 100, "{k}");
        // A small section is shown whole, the large ones share the rest.
        let all = [section("a\n", 3), section("b\n", 1000), section("c\n", 1000)];
        let shown = fit(&all, 2000);
        assert_eq!(shown[0], 3);
        assert!(shown[1] > 50 && shown[1] < 1000 && shown[1].abs_diff(shown[2]) <= 1, "{shown:?}");
        let total: usize = all.iter().zip(&shown).map(|(s, &k)| s.render(k).len()).sum();
        assert!(total <= 2000, "{total}");
        assert_eq!(fit(&all, 1_000_000), vec![3, 1000, 1000]);
    }
}
