//! Layout: decides every space in the token stream, the way `hclwrite`
//! (the engine behind `terraform fmt`) does.
//!
//! The stream is cut into source lines; each line is split into up to three
//! cells — `lead` (everything up to the `=` of a single-line assignment),
//! `assign` (from that `=` to the end of the line) and `comment` (a trailing
//! comment). Then, in order:
//!
//! 1. indentation: two spaces per level, the level following the net count
//!    of opening and closing brackets on each line;
//! 2. spacing: the spaces between neighbouring tokens inside a cell, chosen
//!    from the token classes ([`space_after`]);
//! 3. alignment: the `assign` cells of consecutive lines are aligned one
//!    space after the widest `lead`, and then the `comment` cells of
//!    consecutive lines one space after the widest `lead` + `assign`.

use crate::lexer::{Kind, Token};
use crate::width::columns;

/// One source line, as index ranges into the token vector:
/// `lead = start..assign`, `assign = assign..comment`, `comment = comment..end`.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    assign: usize,
    comment: usize,
    end: usize,
}

impl Line {
    fn has_assign(&self) -> bool {
        self.assign < self.comment
    }

    fn has_comment(&self) -> bool {
        self.comment < self.end
    }
}

/// Sets `spaces` on every token of `tokens`.
pub(crate) fn layout(tokens: &mut [Token]) {
    let lines = split_lines(tokens);
    indent(tokens, &lines);
    space(tokens, &lines);
    align(tokens, &lines);
}

/// Writes the tokens out with their spaces.
pub(crate) fn render(tokens: &[Token]) -> String {
    let mut out = String::with_capacity(tokens.iter().map(|t| t.text.len() + t.spaces).sum());
    for t in tokens {
        for _ in 0..t.spaces {
            out.push(' ');
        }
        out.push_str(&t.text);
    }
    out
}

fn split_lines(tokens: &[Token]) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        if t.ends_line() {
            lines.push(cells(tokens, start, i + 1));
            start = i + 1;
        }
    }
    if start < tokens.len() {
        lines.push(cells(tokens, start, tokens.len()));
    }
    lines
}

/// Splits one line into its cells.
fn cells(tokens: &[Token], start: usize, end: usize) -> Line {
    let mut comment = end;
    if end - start > 1 && tokens[end - 1].kind == Kind::Comment {
        comment = end - 1;
    }
    let mut assign = comment;
    for i in start + 1..comment {
        if tokens[i].kind == Kind::Equal {
            // Only a whole single-line expression is an "assign" cell; an
            // unbalanced one opens a multi-line value.
            let net: i32 = tokens[i..comment].iter().map(Token::bracket_change).sum();
            if net == 0 {
                assign = i;
            }
            break;
        }
    }
    Line { start, assign, comment, end }
}

fn indent(tokens: &mut [Token], lines: &[Line]) {
    // Each entry is the number of brackets a line opened; a line that closes
    // brackets pops entries until that many are closed.
    let mut stack: Vec<i32> = Vec::new();
    for line in lines {
        let first = &tokens[line.start];
        if first.kind == Kind::Newline {
            tokens[line.start].spaces = 0;
            continue;
        }
        let mut net = 0;
        for t in &tokens[line.start..line.assign] {
            net += t.bracket_change();
            if t.kind == Kind::Heredoc {
                break;
            }
        }
        net += tokens[line.assign..line.comment].iter().map(Token::bracket_change).sum::<i32>();
        if net < 0 {
            let mut closed = -net;
            while closed > 0 {
                let Some(top) = stack.last_mut() else { break };
                if closed > *top {
                    closed -= *top;
                    stack.pop();
                } else if closed < *top {
                    *top -= closed;
                    closed = 0;
                } else {
                    stack.pop();
                    closed = 0;
                }
            }
        }
        tokens[line.start].spaces = 2 * stack.len();
        if net > 0 {
            stack.push(net);
        }
    }
}

fn space(tokens: &mut [Token], lines: &[Line]) {
    for line in lines {
        space_cell(tokens, line.start, line.assign);
        if line.has_assign() {
            tokens[line.assign].spaces = 1;
            space_cell(tokens, line.assign, line.comment);
        }
    }
}

/// Sets the spaces between neighbouring tokens of `tokens[start..end]`.
fn space_cell(tokens: &mut [Token], start: usize, end: usize) {
    for i in start..end.saturating_sub(1) {
        let before = if i > start { Some(&tokens[i - 1]) } else { None };
        let spaced = space_after(&tokens[i], before, &tokens[i + 1]);
        tokens[i + 1].spaces = usize::from(spaced);
    }
}

/// Whether `subject` is followed by a space when `after` follows it and
/// `before` (if any) precedes it. A transcription of `hclwrite`'s
/// `spaceAfterToken`, rule for rule and in the same order.
fn space_after(subject: &Token, before: Option<&Token>, after: &Token) -> bool {
    let s = subject.last_kind();
    let a = after.first_kind();
    let b = before.map_or(Kind::Nil, Token::last_kind);
    let closes = |k: Kind| matches!(k, Kind::CBrace | Kind::CBrack | Kind::CParen);
    let opens = |k: Kind| matches!(k, Kind::OBrace | Kind::OBrack | Kind::OParen);

    if a == Kind::Newline || a == Kind::Nil {
        return false;
    }
    if s == Kind::Ident && a == Kind::OParen {
        // Function name and its argument list.
        return false;
    }
    if (s == Kind::Ident && a == Kind::DoubleColon) || (s == Kind::DoubleColon && a == Kind::Ident) {
        // Namespaced function names: provider::aws::arn_parse.
        return false;
    }
    if s == Kind::Dot || a == Kind::Dot {
        return false;
    }
    if a == Kind::Comma || a == Kind::Ellipsis {
        return false;
    }
    if s == Kind::Comma {
        return true;
    }
    if matches!(s, Kind::OQuote | Kind::OHeredoc) || matches!(a, Kind::CQuote | Kind::CHeredoc) {
        // Inside a template; unreachable with opaque template tokens.
        return false;
    }
    if s == Kind::Ident && subject.text == "in" && b == Kind::Ident {
        // `for x in [a, b]`: the keyword, not a reference followed by an index.
        return true;
    }
    if a == Kind::OBrack && (s == Kind::Ident || s == Kind::Number || closes(s)) {
        // Index: foo[0], bar()[1].
        return false;
    }
    if s == Kind::Bang {
        return false;
    }
    if s == Kind::Minus {
        // Negation has no space after it; subtraction has. A minus is taken
        // as a negation when what precedes it cannot end an expression.
        return !matches!(
            b,
            Kind::Nil
                | Kind::OParen
                | Kind::OBrace
                | Kind::OBrack
                | Kind::Equal
                | Kind::Colon
                | Kind::Comma
                | Kind::Question
                | Kind::Plus
                | Kind::Star
                | Kind::Slash
                | Kind::Percent
                | Kind::Minus
                | Kind::EqualOp
                | Kind::NotEqual
                | Kind::Gt
                | Kind::Ge
                | Kind::Lt
                | Kind::Le
                | Kind::And
                | Kind::Or
                | Kind::Bang
        );
    }
    if s == Kind::OBrace || a == Kind::CBrace {
        // Braces keep a space inside, except in an empty pair: `{}`.
        return !(s == Kind::OBrace && a == Kind::CBrace);
    }
    if opens(s) {
        return false;
    }
    if closes(a) {
        return false;
    }
    true
}

fn align(tokens: &mut [Token], lines: &[Line]) {
    // `=` of consecutive single-line assignments.
    for group in runs(lines, Line::has_assign) {
        let widths: Vec<usize> = group.iter().map(|l| columns(&tokens[l.start..l.assign])).collect();
        let max = widths.iter().copied().max().unwrap_or(0);
        for (l, w) in group.iter().zip(widths) {
            tokens[l.assign].spaces = max - w + 1;
        }
    }
    // Trailing comments of consecutive lines.
    for group in runs(lines, Line::has_comment) {
        let widths: Vec<usize> = group.iter().map(|l| columns(&tokens[l.start..l.comment])).collect();
        let max = widths.iter().copied().max().unwrap_or(0);
        for (l, w) in group.iter().zip(widths) {
            tokens[l.comment].spaces = max - w + 1;
        }
    }
}

/// Maximal runs of consecutive lines satisfying `pred`.
fn runs(lines: &[Line], pred: fn(&Line) -> bool) -> Vec<&[Line]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if pred(&lines[i]) {
            let start = i;
            while i < lines.len() && pred(&lines[i]) {
                i += 1;
            }
            out.push(&lines[start..i]);
        } else {
            i += 1;
        }
    }
    out
}
