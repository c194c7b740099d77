//! Lexer: turns HCL source into the flat token stream the layout pass works on.
//!
//! The token classes mirror those of HashiCorp's `hclsyntax` scanner, because
//! `terraform fmt` decides every space from those classes. Two deliberate
//! differences:
//!
//! * a whole quoted template (`"..."`, interpolations included) is one opaque
//!   [`Kind::Quoted`] token, and a whole heredoc (from `<<EOT` up to and
//!   including the closing marker, without the newline that follows it) is one
//!   opaque [`Kind::Heredoc`] token, so their bytes are never touched;
//! * trailing spaces and tabs inside comments are dropped, so that no output
//!   line ends in whitespace.
//!
//! The lexer runs only on input that `hcl-edit` has already accepted; it still
//! never panics on odd input: anything it does not recognise becomes a
//! one-character [`Kind::Other`] token, so no byte is ever lost.

/// Token class, named after the `hclsyntax` token types it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `\n` or `\r\n`.
    Newline,
    /// `# ...` or `// ...` (including the newline that ends it, if any) or `/* ... */`.
    Comment,
    Ident,
    Number,
    /// A whole quoted template, quotes included.
    Quoted,
    /// A whole heredoc, from `<<` to the end of the closing marker.
    Heredoc,
    OBrace,
    CBrace,
    OBrack,
    CBrack,
    OParen,
    CParen,
    Dot,
    Comma,
    Ellipsis,
    Colon,
    DoubleColon,
    Question,
    Equal,
    FatArrow,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    EqualOp,
    NotEqual,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Bang,
    /// Anything else (a single character).
    Other,
    /// Edge-of-template classes, used only when asking how an opaque
    /// [`Kind::Quoted`] / [`Kind::Heredoc`] token looks from the outside.
    OQuote,
    CQuote,
    OHeredoc,
    CHeredoc,
    /// Placeholder for "no token" at the start of a cell.
    Nil,
}

/// One token and the number of spaces written before it.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: Kind,
    pub text: String,
    /// Byte offset of the token in the source.
    pub start: usize,
    /// Spaces written before the token; recomputed by the layout pass.
    pub spaces: usize,
}

impl Token {
    /// The class this token shows to the token before it.
    pub fn first_kind(&self) -> Kind {
        match self.kind {
            Kind::Quoted => Kind::OQuote,
            Kind::Heredoc => Kind::OHeredoc,
            k => k,
        }
    }

    /// The class this token shows to the token after it.
    pub fn last_kind(&self) -> Kind {
        match self.kind {
            Kind::Quoted => Kind::CQuote,
            Kind::Heredoc => Kind::CHeredoc,
            k => k,
        }
    }

    /// Whether this token ends a source line (`hclwrite`'s `tokenIsNewline`).
    pub fn ends_line(&self) -> bool {
        match self.kind {
            Kind::Newline => true,
            Kind::Comment => self.text.ends_with('\n'),
            _ => false,
        }
    }

    /// Net bracket nesting change of this token.
    pub fn bracket_change(&self) -> i32 {
        match self.kind {
            Kind::OBrace | Kind::OBrack | Kind::OParen => 1,
            Kind::CBrace | Kind::CBrack | Kind::CParen => -1,
            _ => 0,
        }
    }
}

/// Characters that may start an identifier. Non-ASCII characters outside
/// strings and comments can only be part of identifiers in valid HCL.
fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (!c.is_ascii() && !c.is_whitespace())
}

fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || (!c.is_ascii() && !c.is_whitespace())
}

/// Splits `src` into tokens. Spaces and tabs between tokens are dropped (the
/// layout pass decides them anew); every other byte ends up in exactly one
/// token.
pub(crate) fn lex(src: &str) -> Vec<Token> {
    let mut lx = Lexer { src, pos: 0, tokens: Vec::new() };
    lx.run();
    lx.tokens
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn bytes(&self) -> &[u8] {
        self.src.as_bytes()
    }

    fn at(&self, i: usize) -> u8 {
        self.bytes().get(i).copied().unwrap_or(0)
    }

    fn starts_with_at(&self, i: usize, s: &str) -> bool {
        self.src.as_bytes().get(i..).is_some_and(|rest| rest.starts_with(s.as_bytes()))
    }

    fn push(&mut self, kind: Kind, end: usize) {
        let text = &self.src[self.pos..end];
        let text = if kind == Kind::Comment { trim_comment(text) } else { text.to_owned() };
        self.tokens.push(Token { kind, text, start: self.pos, spaces: 0 });
        self.pos = end;
    }

    fn run(&mut self) {
        while self.pos < self.src.len() {
            let c = self.at(self.pos);
            let p = self.pos;
            match c {
                b' ' | b'\t' => self.pos += 1,
                b'\r' if self.at(p + 1) == b'\n' => self.push(Kind::Newline, p + 2),
                b'\r' => self.pos += 1,
                b'\n' => self.push(Kind::Newline, p + 1),
                b'#' => {
                    let end = line_comment_end(self.src, p);
                    self.push(Kind::Comment, end);
                }
                b'/' if self.at(p + 1) == b'/' => {
                    let end = line_comment_end(self.src, p);
                    self.push(Kind::Comment, end);
                }
                b'/' if self.at(p + 1) == b'*' => {
                    let end = match self.src[p + 2..].find("*/") {
                        Some(i) => p + 2 + i + 2,
                        None => self.src.len(),
                    };
                    self.push(Kind::Comment, end);
                }
                b'"' => {
                    let end = scan_quoted(self.src, p + 1);
                    self.push(Kind::Quoted, end);
                }
                b'<' if self.at(p + 1) == b'<' => match heredoc_end(self.src, p) {
                    Some(end) => self.push(Kind::Heredoc, end),
                    None => self.push(Kind::Lt, p + 1),
                },
                b'0'..=b'9' => {
                    let end = number_end(self.src, p);
                    self.push(Kind::Number, end);
                }
                _ => {
                    let ch = self.src[p..].chars().next().unwrap_or('\0');
                    if is_ident_start(ch) {
                        let end = ident_end(self.src, p);
                        self.push(Kind::Ident, end);
                    } else {
                        let (kind, len) = self.punct(p);
                        let len = if kind == Kind::Other { ch.len_utf8() } else { len };
                        self.push(kind, p + len);
                    }
                }
            }
        }
    }

    fn punct(&self, p: usize) -> (Kind, usize) {
        const MULTI: [(&str, Kind); 9] = [
            ("...", Kind::Ellipsis),
            ("::", Kind::DoubleColon),
            ("==", Kind::EqualOp),
            ("!=", Kind::NotEqual),
            ("<=", Kind::Le),
            (">=", Kind::Ge),
            ("&&", Kind::And),
            ("||", Kind::Or),
            ("=>", Kind::FatArrow),
        ];
        for (s, k) in MULTI {
            if self.starts_with_at(p, s) {
                return (k, s.len());
            }
        }
        let kind = match self.at(p) {
            b'{' => Kind::OBrace,
            b'}' => Kind::CBrace,
            b'[' => Kind::OBrack,
            b']' => Kind::CBrack,
            b'(' => Kind::OParen,
            b')' => Kind::CParen,
            b'.' => Kind::Dot,
            b',' => Kind::Comma,
            b':' => Kind::Colon,
            b'?' => Kind::Question,
            b'=' => Kind::Equal,
            b'+' => Kind::Plus,
            b'-' => Kind::Minus,
            b'*' => Kind::Star,
            b'/' => Kind::Slash,
            b'%' => Kind::Percent,
            b'<' => Kind::Lt,
            b'>' => Kind::Gt,
            b'!' => Kind::Bang,
            _ => Kind::Other,
        };
        (kind, 1)
    }
}

/// Drops spaces and tabs that end a line inside a comment.
fn trim_comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in text.split_inclusive('\n') {
        let (body, nl) = match piece.strip_suffix("\r\n") {
            Some(b) => (b, "\r\n"),
            None => match piece.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (piece, ""),
            },
        };
        out.push_str(body.trim_end_matches([' ', '\t']));
        out.push_str(nl);
    }
    out
}

/// End of a `#` / `//` comment: just past its newline, or the end of input.
fn line_comment_end(src: &str, p: usize) -> usize {
    match src[p..].find('\n') {
        Some(i) => p + i + 1,
        None => src.len(),
    }
}

fn ident_end(src: &str, p: usize) -> usize {
    let mut end = p;
    for (i, ch) in src[p..].char_indices() {
        if i == 0 || is_ident_continue(ch) {
            end = p + i + ch.len_utf8();
        } else {
            break;
        }
    }
    end
}

/// `[0-9]+ ('.' [0-9]+)? ([eE] [+-]? [0-9]+)?`, as in `hclsyntax`.
fn number_end(src: &str, p: usize) -> usize {
    let b = src.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = digits(p);
    if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
        i = digits(i + 1);
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            i = digits(j);
        }
    }
    i
}

/// Scans a quoted template whose opening quote ends just before `p`; returns
/// the offset just past the closing quote (or the end of the line / input if
/// the string is unterminated).
fn scan_quoted(src: &str, mut p: usize) -> usize {
    let b = src.as_bytes();
    while p < b.len() {
        match b[p] {
            b'\\' => {
                p += 1;
                if p < b.len() {
                    p += utf8_len(b[p]);
                }
            }
            b'"' => return p + 1,
            b'\n' => return p,
            b'$' | b'%' if b.get(p + 1) == Some(&b[p]) && b.get(p + 2) == Some(&b'{') => p += 3,
            b'$' | b'%' if b.get(p + 1) == Some(&b'{') => p = scan_interp(src, p + 2),
            c => p += utf8_len(c),
        }
    }
    p
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Scans the inside of `${ ... }` / `%{ ... }` starting at `p` (just past the
/// opening brace); returns the offset just past the matching `}`.
fn scan_interp(src: &str, mut p: usize) -> usize {
    let b = src.as_bytes();
    let mut depth = 0usize;
    while p < b.len() {
        match b[p] {
            b'{' => {
                depth += 1;
                p += 1;
            }
            b'}' => {
                p += 1;
                if depth == 0 {
                    return p;
                }
                depth -= 1;
            }
            b'"' => p = scan_quoted(src, p + 1),
            b'#' => p = line_comment_end(src, p),
            b'/' if b.get(p + 1) == Some(&b'/') => p = line_comment_end(src, p),
            b'/' if b.get(p + 1) == Some(&b'*') => {
                p = match src[p + 2..].find("*/") {
                    Some(i) => p + 2 + i + 2,
                    None => b.len(),
                }
            }
            b'<' if b.get(p + 1) == Some(&b'<') => match heredoc_end(src, p) {
                Some(end) => p = end,
                None => p += 2,
            },
            c => p += utf8_len(c),
        }
    }
    p
}

/// If a heredoc starts at `p` (`<<EOT` or `<<-EOT` followed by a line
/// ending), returns the offset just past its closing marker.
///
/// The closing marker is recognised as `hcl-edit` does: a line ending
/// outside any interpolation, optional spaces/tabs, the marker, and no
/// identifier character after it.
fn heredoc_end(src: &str, p: usize) -> Option<usize> {
    let b = src.as_bytes();
    let mut i = p + 2;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let first = src[i..].chars().next()?;
    if !is_ident_start(first) {
        return None;
    }
    let marker_end = ident_end(src, i);
    let marker = &src[i..marker_end];
    let mut q = marker_end;
    if b.get(q) == Some(&b'\r') {
        q += 1;
    }
    if b.get(q) != Some(&b'\n') {
        return None;
    }
    q += 1;
    // `q` is at the start of a line.
    loop {
        // Marker check at line start.
        let mut s = q;
        while s < b.len() && (b[s] == b' ' || b[s] == b'\t') {
            s += 1;
        }
        if src[s..].starts_with(marker) {
            let after = s + marker.len();
            let next = src[after..].chars().next();
            if !next.is_some_and(is_ident_continue) {
                return Some(after);
            }
        }
        // Scan the rest of the line.
        loop {
            if q >= b.len() {
                return Some(b.len());
            }
            match b[q] {
                b'\n' => {
                    q += 1;
                    break;
                }
                b'$' | b'%' if b.get(q + 1) == Some(&b[q]) && b.get(q + 2) == Some(&b'{') => q += 3,
                b'$' | b'%' if b.get(q + 1) == Some(&b'{') => q = scan_interp(src, q + 2),
                c => q += utf8_len(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Kind, String)> {
        lex(src).into_iter().map(|t| (t.kind, t.text)).collect()
    }

    #[test]
    fn idents_may_contain_dashes() {
        let k = kinds("a-1 - b");
        assert_eq!(k[0], (Kind::Ident, "a-1".into()));
        assert_eq!(k[1].0, Kind::Minus);
        assert_eq!(k[2], (Kind::Ident, "b".into()));
    }

    #[test]
    fn quoted_with_nested_interpolation_is_one_token() {
        let k = kinds(r#"x = "a${f("}", {b = "c"})}d" # t"#);
        assert_eq!(k[2], (Kind::Quoted, r#""a${f("}", {b = "c"})}d""#.into()));
        assert_eq!(k[3], (Kind::Comment, "# t".into()));
    }

    #[test]
    fn heredoc_is_one_token_up_to_marker() {
        let src = "x = <<-EOT\n  a ${b}\n  EOTX\n  EOT\ny = 1\n";
        let k = kinds(src);
        assert_eq!(k[2], (Kind::Heredoc, "<<-EOT\n  a ${b}\n  EOTX\n  EOT".into()));
        assert_eq!(k[3].0, Kind::Newline);
        assert_eq!(k[4], (Kind::Ident, "y".into()));
    }

    #[test]
    fn comments_lose_trailing_blanks() {
        let k = kinds("# a  \n/* b \n c */");
        assert_eq!(k[0], (Kind::Comment, "# a\n".into()));
        assert_eq!(k[1], (Kind::Comment, "/* b\n c */".into()));
    }

    #[test]
    fn numbers_and_operators() {
        let k = kinds("1.5e3...a.0.b<=c==d!=e=>f::g");
        let ks: Vec<Kind> = k.iter().map(|t| t.0).collect();
        assert_eq!(
            ks,
            vec![
                Kind::Number,
                Kind::Ellipsis,
                Kind::Ident,
                Kind::Dot,
                Kind::Number,
                Kind::Dot,
                Kind::Ident,
                Kind::Le,
                Kind::Ident,
                Kind::EqualOp,
                Kind::Ident,
                Kind::NotEqual,
                Kind::Ident,
                Kind::FatArrow,
                Kind::Ident,
                Kind::DoubleColon,
                Kind::Ident,
            ]
        );
    }
}
