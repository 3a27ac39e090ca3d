//! scim_v2's parse of a filter, kept per shape (and of a PATCH path, kept whole).
//!
//! The parser's lexer (lalrpop over a lazy DFA) starts from an empty DFA cache on every
//! call, so parsing `userName eq "…"` cost about 100,000 instructions, over a quarter of a
//! filtered GET. Identity providers send a handful of shapes with different values. So the string
//! literals of a filter are blanked (`userName eq ""`), that text is parsed by scim_v2 once,
//! and each later filter of the same shape takes a copy of its tree with its own literals
//! put back in the order they appear: a parse tree's leaves are its tokens, in order. The
//! grammar stays scim_v2's; only its output is reused.
//!
//! A literal holding a backslash or a control character is not blanked: decoding escapes is
//! the parser's business, so such filters are parsed whole, as are filters whose blanked
//! text does not parse (the error must name the filter that was sent).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use scim_v2::filter::{self as sv, AttrExp, CompValue, ValFilter};

/// Shapes kept; the map starts over when full (an attacker sending endless shapes only
/// costs the parses that would have happened anyway).
const SHAPES: usize = 512;

fn shapes() -> &'static Mutex<HashMap<String, sv::Filter>> {
    static SHAPES_SEEN: OnceLock<Mutex<HashMap<String, sv::Filter>>> = OnceLock::new();
    SHAPES_SEEN.get_or_init(Mutex::default)
}

/// Parses `text` exactly as `text.parse::<sv::Filter>()` does.
pub(crate) fn parse(text: &str) -> Result<sv::Filter, sv::ParseError> {
    let Some((shape, literals)) = blank_literals(text) else {
        return text.parse();
    };
    let known = shapes()
        .lock()
        .ok()
        .and_then(|seen| seen.get(&shape).cloned());
    let mut tree = match known {
        Some(tree) => tree,
        None => {
            let Ok(tree) = shape.parse::<sv::Filter>() else {
                return text.parse();
            };
            if let Ok(mut seen) = shapes().lock() {
                if seen.len() >= SHAPES {
                    seen.clear();
                }
                seen.insert(shape, tree.clone());
            }
            tree
        }
    };
    let mut literals = literals.into_iter();
    if fill(&mut tree, &mut literals) && literals.next().is_none() {
        Ok(tree)
    } else {
        // A tree that does not take the literals one for one: let the parser decide.
        text.parse()
    }
}

/// Parses a PATCH path (RFC 7644 §3.5.2) exactly as `text.parse::<sv::PatchPath>()` does.
/// Paths without a string literal (`active`, `name.givenName`, the manager's URN) are the
/// same in every request and are kept whole; the others are parsed each time.
pub(crate) fn parse_path(text: &str) -> Result<sv::PatchPath, sv::ParseError> {
    static PATHS: OnceLock<Mutex<HashMap<String, sv::PatchPath>>> = OnceLock::new();
    if text.contains('"') {
        return text.parse();
    }
    let paths = PATHS.get_or_init(Mutex::default);
    if let Some(path) = paths.lock().ok().and_then(|seen| seen.get(text).cloned()) {
        return Ok(path);
    }
    let path = text.parse::<sv::PatchPath>()?;
    if let Ok(mut seen) = paths.lock() {
        if seen.len() >= SHAPES {
            seen.clear();
        }
        seen.insert(text.to_owned(), path.clone());
    }
    Ok(path)
}

/// The text with every string literal emptied, and the literals' contents in order; `None`
/// when a literal is unterminated or holds a backslash or a control character.
fn blank_literals(text: &str) -> Option<(String, Vec<&str>)> {
    let mut shape = String::with_capacity(text.len());
    let mut literals = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('"') {
        shape.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        let close = after.find(['"', '\\'])?;
        let content = &after[..close];
        if after[close..].starts_with('\\') || content.bytes().any(|b| b < 0x20) {
            return None;
        }
        literals.push(content);
        shape.push('"');
        rest = &after[close + 1..];
    }
    shape.push_str(rest);
    Some((shape, literals))
}

/// Puts the literals back into the string values of `tree`, in textual order; `false` when
/// they run out.
fn fill<'a>(tree: &mut sv::Filter, literals: &mut impl Iterator<Item = &'a str>) -> bool {
    match tree {
        sv::Filter::Attr(exp) => fill_exp(exp, literals),
        sv::Filter::ValuePath(path) => fill_val(&mut path.filter, literals),
        sv::Filter::Not(inner) => fill(inner, literals),
        sv::Filter::And(operands) | sv::Filter::Or(operands) => {
            operands.iter_mut().all(|f| fill(f, literals))
        }
    }
}

fn fill_val<'a>(tree: &mut ValFilter, literals: &mut impl Iterator<Item = &'a str>) -> bool {
    match tree {
        ValFilter::Attr(exp) => fill_exp(exp, literals),
        ValFilter::Not(inner) => fill_val(inner, literals),
        ValFilter::And(operands) | ValFilter::Or(operands) => {
            operands.iter_mut().all(|f| fill_val(f, literals))
        }
    }
}

fn fill_exp<'a>(exp: &mut AttrExp, literals: &mut impl Iterator<Item = &'a str>) -> bool {
    match exp {
        AttrExp::Comparison(_, _, CompValue::Str(value)) => match literals.next() {
            Some(literal) => {
                literal.clone_into(value);
                true
            }
            None => false,
        },
        AttrExp::Comparison(..) | AttrExp::Present(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::{blank_literals, parse};

    #[test]
    fn literals_are_blanked_in_order_unless_they_need_decoding() {
        let (shape, literals) =
            blank_literals(r#"userName eq "a@b" or emails[value co "é"]"#).unwrap();
        assert_eq!(shape, r#"userName eq "" or emails[value co ""]"#);
        assert_eq!(literals, ["a@b", "é"]);
        assert!(blank_literals(r#"userName eq "a\"b""#).is_none());
        assert!(blank_literals("userName eq \"a\u{1}\"").is_none());
        assert!(blank_literals(r#"userName eq "open"#).is_none());
        assert_eq!(blank_literals("title pr").unwrap().0, "title pr");
    }

    #[test]
    fn a_kept_path_is_the_parsed_path() {
        for text in [
            "active",
            "name.givenName",
            "members[value eq \"x\"]",
            "a b",
            "ACTIVE",
        ] {
            for _ in 0..2 {
                let ours = super::parse_path(text).map_err(|e| e.to_string());
                let theirs = text
                    .parse::<scim_v2::filter::PatchPath>()
                    .map_err(|e| e.to_string());
                assert_eq!(ours, theirs, "{text}");
            }
        }
    }

    #[test]
    fn the_kept_shape_gives_what_the_parser_gives() {
        for text in [
            r#"userName eq "bjensen""#,
            r#"userName eq "someone.else""#,
            r#"userName eq "bjensen" and not (emails[type eq "work" and value sw "x"] or title pr)"#,
            r#"userName eq "again" and not (emails[type eq "home" and value sw "y"] or title pr)"#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z" and active eq true"#,
            r#"externalId eq "é\u00e9""#,
            r#"userName eq """#,
            r#"userName eq "unterminated"#,
            r#"userName zz "x""#,
        ] {
            // Twice: the first parse records the shape, the second takes it.
            for _ in 0..2 {
                let ours = parse(text).map_err(|e| e.to_string());
                let theirs = text
                    .parse::<scim_v2::filter::Filter>()
                    .map_err(|e| e.to_string());
                assert_eq!(ours, theirs, "{text}");
            }
        }
    }
}
