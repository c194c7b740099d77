//! Display width of tokens, used to align `=` signs and trailing comments.
//!
//! `hclwrite` counts grapheme clusters. This module approximates that without
//! a Unicode segmentation table: every `char` counts as one column except
//! those that extend the previous cluster (combining marks, variation
//! selectors, zero-width joiners and the character joined by them, emoji
//! modifiers, tag characters, the second of a regional-indicator pair, and
//! the `\n` of a `\r\n`). For ASCII, and for almost all real-world text, the
//! result is exactly the grapheme count.

use crate::lexer::Token;

/// Columns occupied by `tokens`, counting each token's leading spaces.
pub(crate) fn columns(tokens: &[Token]) -> usize {
    tokens.iter().map(|t| t.spaces + graphemes(&t.text)).sum()
}

/// Approximate number of extended grapheme clusters in `s`.
pub(crate) fn graphemes(s: &str) -> usize {
    if s.is_ascii() {
        return s.len() - s.matches("\r\n").count();
    }
    let mut count = 0;
    let mut prev: Option<char> = None;
    let mut after_zwj = false;
    let mut regional_pending = false;
    for c in s.chars() {
        let extends = match prev {
            None => false,
            Some(p) => (p == '\r' && c == '\n') || is_extender(c) || after_zwj || (is_regional(c) && regional_pending),
        };
        if is_regional(c) {
            regional_pending = !(regional_pending && extends);
        } else {
            regional_pending = false;
        }
        after_zwj = c == '\u{200D}';
        if !extends {
            count += 1;
        }
        prev = Some(c);
    }
    count
}

fn is_regional(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

/// Characters that never start a grapheme cluster of their own.
fn is_extender(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'   // combining diacritical marks
        | '\u{0483}'..='\u{0489}' // Cyrillic combining
        | '\u{0591}'..='\u{05BD}' | '\u{05BF}' | '\u{05C1}'..='\u{05C2}' | '\u{05C4}'..='\u{05C5}' | '\u{05C7}'
        | '\u{0610}'..='\u{061A}' | '\u{064B}'..='\u{065F}' | '\u{0670}'
        | '\u{06D6}'..='\u{06DC}' | '\u{06DF}'..='\u{06E4}' | '\u{06E7}'..='\u{06E8}' | '\u{06EA}'..='\u{06ED}'
        | '\u{0900}'..='\u{0903}' | '\u{093A}'..='\u{093C}' | '\u{093E}'..='\u{094F}' | '\u{0951}'..='\u{0957}'
        | '\u{0962}'..='\u{0963}'
        | '\u{0E31}' | '\u{0E34}'..='\u{0E3A}' | '\u{0E47}'..='\u{0E4E}' // Thai
        | '\u{1AB0}'..='\u{1AFF}' // combining diacritical marks extended
        | '\u{1DC0}'..='\u{1DFF}' // combining diacritical marks supplement
        | '\u{200C}'..='\u{200D}' // ZWNJ, ZWJ
        | '\u{20D0}'..='\u{20FF}' // combining marks for symbols
        | '\u{3099}'..='\u{309A}' // kana voicing marks
        | '\u{FE00}'..='\u{FE0F}' // variation selectors
        | '\u{FE20}'..='\u{FE2F}' // combining half marks
        | '\u{1F3FB}'..='\u{1F3FF}' // emoji skin-tone modifiers
        | '\u{E0020}'..='\u{E007F}' // tag characters
        | '\u{E0100}'..='\u{E01EF}' // variation selectors supplement
    )
}

#[cfg(test)]
mod tests {
    use super::graphemes;

    #[test]
    fn counts_clusters() {
        assert_eq!(graphemes("abc"), 3);
        assert_eq!(graphemes("a\r\nb"), 3);
        assert_eq!(graphemes("café"), 4);
        assert_eq!(graphemes("cafe\u{301}"), 4);
        assert_eq!(graphemes("日本"), 2);
        assert_eq!(graphemes("👩\u{200D}💻x"), 2);
        assert_eq!(graphemes("🇫🇷🇩🇪"), 2);
        assert_eq!(graphemes("👍🏽"), 1);
    }
}
