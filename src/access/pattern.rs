//! Path patterns in allow rules: `*` within one segment, `**` across segments.

use std::fmt;

/// A path pattern: `*` matches within one segment (no `/`), `**` matches anything, including
/// `/`; neither matches nothing. Everything else matches itself. `/bucket/reports/**` is
/// everything under that prefix, but not `/bucket/reports/` itself.
#[derive(Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
}

impl PathPattern {
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        if !text.starts_with('/') {
            return Err(format!("'{text}' must start with '/'"));
        }
        if text.contains("***") {
            return Err(format!("'{text}': use * (one segment) or ** (any depth)"));
        }
        Ok(PathPattern {
            text: text.to_string(),
        })
    }

    pub fn matches(&self, path: &[u8]) -> bool {
        glob(self.text.as_bytes(), path)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

/// Iterative glob match, linear in practice and never exponential. A star matches at least
/// one byte: `/bucket/*` is not the bucket itself (`/bucket/`). On a mismatch the last single
/// `*` swallows one more byte if that byte is not `/`; failing that, the last `**` does (and
/// whatever followed it is matched afresh).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // For the last `*` and the last `**`: the pattern index after it, and where in the text
    // its match ends.
    let mut single: Option<(usize, usize)> = None;
    let mut double: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() && pattern[p] == b'*' {
            let is_double = pattern.get(p + 1) == Some(&b'*');
            if t < text.len() && (is_double || text[t] != b'/') {
                if is_double {
                    p += 2;
                    double = Some((p, t + 1));
                    single = None;
                } else {
                    p += 1;
                    single = Some((p, t + 1));
                }
                t += 1;
                continue;
            }
        } else if p < pattern.len() && t < text.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
            continue;
        } else if p == pattern.len() && t == text.len() {
            return true;
        }
        if let Some((after, end)) = single.filter(|&(_, end)| end < text.len() && text[end] != b'/')
        {
            single = Some((after, end + 1));
            p = after;
            t = end + 1;
        } else if let Some((after, end)) = double.filter(|&(_, end)| end < text.len()) {
            single = None;
            double = Some((after, end + 1));
            p = after;
            t = end + 1;
        } else {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> PathPattern {
        PathPattern::parse(p).unwrap()
    }

    #[test]
    fn single_star_stays_in_its_segment() {
        let p = pat("/bucket/*/report.csv");
        assert!(p.matches(b"/bucket/2024/report.csv"));
        assert!(!p.matches(b"/bucket/2024/01/report.csv"));
        assert!(!p.matches(b"/bucket/report.csv"));
        assert!(pat("/a/*").matches(b"/a/b"));
        assert!(
            !pat("/a/*").matches(b"/a/"),
            "a star never matches an empty segment"
        );
        assert!(!pat("/a/*").matches(b"/a/b/c"));
    }

    #[test]
    fn double_star_crosses_segments() {
        let p = pat("/bucket/reports/**");
        assert!(!p.matches(b"/bucket/reports/"), "nor does a double star");
        assert!(p.matches(b"/bucket/reports/x"));
        assert!(p.matches(b"/bucket/reports/a/b/c.txt"));
        assert!(!p.matches(b"/bucket/reports"));
        assert!(!p.matches(b"/bucket/reportsX/a"));
        assert!(!p.matches(b"/other/reports/a"));
        assert!(pat("/**/x").matches(b"/a/b/x"));
        assert!(pat("/**.json").matches(b"/a/b.json"));
        assert!(!pat("/*.json").matches(b"/a/b.json"));
    }

    /// A slow, obviously correct matcher to compare the fast one with.
    fn reference(p: &[u8], t: &[u8]) -> bool {
        if p.starts_with(b"**") {
            return (1..=t.len()).any(|i| reference(&p[2..], &t[i..]));
        }
        if p.starts_with(b"*") {
            let limit = t.iter().position(|&b| b == b'/').unwrap_or(t.len());
            return (1..=limit).any(|i| reference(&p[1..], &t[i..]));
        }
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(a), Some(b)) if a == b => reference(&p[1..], &t[1..]),
            _ => false,
        }
    }

    #[test]
    fn glob_agrees_with_the_reference_matcher() {
        let patterns = [
            "/**/a/*",
            "/*/a/**",
            "/a*/**b",
            "/**a**",
            "/*a*/b*",
            "/**/a/**/b",
            "/a/*",
            "/*",
            "/**",
            "/a/**/*b",
            "/*/*/*",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let len = rng.usize(0..9);
            let text: Vec<u8> = std::iter::once(b'/')
                .chain((0..len).map(|_| b"ab/"[rng.usize(0..3)]))
                .collect();
            for p in patterns {
                assert_eq!(
                    glob(p.as_bytes(), &text),
                    reference(p.as_bytes(), &text),
                    "{p} on {}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }

    #[test]
    fn literal_patterns_match_exactly() {
        assert!(pat("/health").matches(b"/health"));
        assert!(!pat("/health").matches(b"/health/x"));
        assert!(!pat("/health").matches(b"/healt"));
    }

    #[test]
    fn patterns_are_checked_when_parsed() {
        assert!(PathPattern::parse("reports/**").is_err());
        assert!(PathPattern::parse("/a/***").is_err());
    }

    #[test]
    fn glob_does_not_blow_up_on_many_stars() {
        let p = pat("/*a*a*a*a*a*a*a*a*a*a*b");
        let text = [b'/']
            .into_iter()
            .chain(std::iter::repeat_n(b'a', 5000))
            .collect::<Vec<u8>>();
        assert!(!p.matches(&text));
    }
}
