//! The body of `POST /bucket?delete` (DeleteObjects): the keys it names are the objects it
//! deletes, so each one must be granted, and they must be read exactly as S3 will read them.
//!
//! So the reader is strict and small rather than a general XML parser: it accepts the document
//! SDKs send and refuses everything whose reading could differ between two XML parsers
//! (comments, CDATA, DTDs and entities, processing instructions, namespace prefixes, encodings
//! other than UTF-8, raw carriage returns, which XML turns into line feeds) as
//! [`Unclear::Ambiguous`]: a `400` costs a client a retry in the plain form, a misread key
//! could cost an object.

use super::{Need, Unclear};

/// S3's own limit on keys per DeleteObjects request.
pub const MAX_OBJECTS: usize = 1000;

/// Parses a DeleteObjects body strictly and returns one [`Need`] per key: `s3:DeleteObject`, or
/// `s3:DeleteObjectVersion` when that `<Object>` has a `<VersionId>`, on `key_prefix` followed by
/// the decoded key. `plain` is `None`: a method says nothing about which keys a body names, so
/// only a rule listing the action grants these.
pub fn delete_needs(key_prefix: &[u8], body: &[u8]) -> Result<Vec<Need>, Unclear> {
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    let mut r = Reader { rest: text };
    r.declaration()?;
    r.skip_space();
    let root = r.open_tag()?;
    if root.name != "Delete" {
        return Err(bad(&format!(
            "the root element is <{}>, not <Delete>",
            root.name
        )));
    }
    if root.empty {
        return Err(bad("<Delete> names no objects"));
    }
    let mut needs = Vec::new();
    let mut quiet = false;
    loop {
        r.skip_space();
        if r.close_tag("Delete")? {
            break;
        }
        let tag = r.open_tag()?;
        if tag.xmlns {
            return Err(bad("an xmlns attribute below <Delete>"));
        }
        match tag.name {
            "Quiet" if !quiet => {
                quiet = true;
                let value = r.text_of(&tag)?;
                if value != "true" && value != "false" {
                    return Err(bad("<Quiet> is neither true nor false"));
                }
            }
            "Object" => {
                if needs.len() == MAX_OBJECTS {
                    return Err(bad("more than 1000 objects"));
                }
                if tag.empty {
                    return Err(bad("an <Object> without a <Key>"));
                }
                let (key, versioned) = r.object()?;
                let action = if versioned {
                    "s3:DeleteObjectVersion"
                } else {
                    "s3:DeleteObject"
                };
                let path = [key_prefix, key.as_bytes()].concat();
                needs.push(Need::new(action, &path, None));
            }
            name => return Err(bad(&format!("an unexpected or repeated <{name}>"))),
        }
    }
    r.skip_space();
    if !r.rest.is_empty() {
        return Err(bad("content after </Delete>"));
    }
    if needs.is_empty() {
        return Err(bad("<Delete> names no objects"));
    }
    Ok(needs)
}

fn bad(why: &str) -> Unclear {
    Unclear::Ambiguous(format!("DeleteObjects body: {why}"))
}

/// An element's start tag.
struct Tag<'a> {
    name: &'a str,
    /// `<Name/>`.
    empty: bool,
    /// Carried an `xmlns` attribute (the only one accepted, and only on `<Delete>`).
    xmlns: bool,
}

struct Reader<'a> {
    rest: &'a str,
}

impl<'a> Reader<'a> {
    fn skip_space(&mut self) {
        self.rest = self
            .rest
            .trim_start_matches([' ', '\t', '\n', '\r'].as_slice());
    }

    /// An optional `<?xml …?>` at the very start: version 1.0, UTF-8 if an encoding is named
    /// (another encoding would make S3 read other keys from the same bytes).
    fn declaration(&mut self) -> Result<(), Unclear> {
        let Some(after) = self.rest.strip_prefix("<?xml") else {
            return Ok(());
        };
        if !after.starts_with([' ', '\t', '\n', '\r', '?']) {
            return Ok(()); // `<?xml-…`: a processing instruction, refused by open_tag
        }
        let Some((inside, rest)) = after.split_once("?>") else {
            return Err(bad("an unterminated XML declaration"));
        };
        let mut attrs = Reader { rest: inside };
        loop {
            attrs.skip_space();
            if attrs.rest.is_empty() {
                break;
            }
            let (name, value) = attrs.attribute()?;
            let fine = match name {
                "version" => value == "1.0",
                "encoding" => value.eq_ignore_ascii_case("utf-8"),
                "standalone" => value == "yes" || value == "no",
                _ => false,
            };
            if !fine {
                return Err(bad(&format!("the XML declaration has {name}=\"{value}\"")));
            }
        }
        self.rest = rest;
        Ok(())
    }

    /// `name="value"` or `name='value'`; values with `<` or `&` are refused rather than decoded.
    fn attribute(&mut self) -> Result<(&'a str, &'a str), Unclear> {
        let name = self.name()?;
        self.skip_space();
        let Some(rest) = self.rest.strip_prefix('=') else {
            return Err(bad(&format!("attribute {name} has no value")));
        };
        let rest = rest.trim_start_matches([' ', '\t', '\n', '\r'].as_slice());
        let quote = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => return Err(bad(&format!("attribute {name} is not quoted"))),
        };
        let Some((value, after)) = rest[1..].split_once(quote) else {
            return Err(bad(&format!("attribute {name} is not closed")));
        };
        if value.contains(['<', '&']) {
            return Err(bad(&format!("attribute {name} has '<' or '&'")));
        }
        self.rest = after;
        Ok((name, value))
    }

    /// An element or attribute name; a prefixed one (`s3:Key`) is refused, since what the
    /// prefix stands for is up to declarations this reader does not follow.
    fn name(&mut self) -> Result<&'a str, Unclear> {
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_-.:".contains(c)))
            .unwrap_or(self.rest.len());
        let name = &self.rest[..end];
        if name.is_empty() {
            return Err(bad("a tag or attribute without a name"));
        }
        if name.contains(':') {
            return Err(bad(&format!("the prefixed name {name}")));
        }
        self.rest = &self.rest[end..];
        Ok(name)
    }

    /// A start tag. Anything else where one belongs (text, a comment, CDATA, a DOCTYPE, a
    /// processing instruction, a stray end tag) is refused.
    fn open_tag(&mut self) -> Result<Tag<'a>, Unclear> {
        let Some(rest) = self.rest.strip_prefix('<') else {
            return Err(bad("text where an element belongs"));
        };
        match rest.chars().next() {
            Some('!') => return Err(bad("a comment, CDATA section or DOCTYPE")),
            Some('?') => return Err(bad("a processing instruction")),
            Some('/') => return Err(bad("an unexpected end tag")),
            _ => {}
        }
        self.rest = rest;
        let name = self.name()?;
        let mut xmlns = false;
        loop {
            let before = self.rest.len();
            self.skip_space();
            if let Some(rest) = self.rest.strip_prefix("/>") {
                self.rest = rest;
                return Ok(Tag {
                    name,
                    empty: true,
                    xmlns,
                });
            }
            if let Some(rest) = self.rest.strip_prefix('>') {
                self.rest = rest;
                return Ok(Tag {
                    name,
                    empty: false,
                    xmlns,
                });
            }
            if self.rest.len() == before {
                return Err(bad(&format!("a malformed <{name}> tag")));
            }
            match self.attribute()? {
                ("xmlns", _) if !xmlns => xmlns = true,
                (attr, _) => return Err(bad(&format!("the attribute {attr} on <{name}>"))),
            }
        }
    }

    /// Consumes `</name>` if it comes next; another end tag is a mismatch.
    fn close_tag(&mut self, name: &str) -> Result<bool, Unclear> {
        let Some(rest) = self.rest.strip_prefix("</") else {
            return Ok(false);
        };
        let rest = rest
            .strip_prefix(name)
            .map(|r| r.trim_start_matches([' ', '\t', '\n', '\r'].as_slice()))
            .and_then(|r| r.strip_prefix('>'));
        match rest {
            Some(rest) => {
                self.rest = rest;
                Ok(true)
            }
            None => Err(bad(&format!("an end tag that does not close <{name}>"))),
        }
    }

    /// The text content of a leaf element whose start tag was just read, entities decoded.
    fn text_of(&mut self, tag: &Tag) -> Result<String, Unclear> {
        if tag.empty {
            return Ok(String::new());
        }
        let end = self.rest.find('<').unwrap_or(self.rest.len());
        let text = decode_text(&self.rest[..end])?;
        self.rest = &self.rest[end..];
        if !self.close_tag(tag.name)? {
            return Err(bad(&format!("<{}> holds more than text", tag.name)));
        }
        Ok(text)
    }

    /// An `<Object>`'s children, up to its end tag: the key, and whether it names a version.
    fn object(&mut self) -> Result<(String, bool), Unclear> {
        let mut key = None;
        let mut version = None;
        let mut seen: Vec<&str> = Vec::new();
        loop {
            self.skip_space();
            if self.close_tag("Object")? {
                break;
            }
            let tag = self.open_tag()?;
            let known = ["Key", "VersionId", "ETag", "LastModifiedTime", "Size"];
            if tag.xmlns || !known.contains(&tag.name) || seen.contains(&tag.name) {
                return Err(bad(&format!("an unexpected or repeated <{}>", tag.name)));
            }
            seen.push(tag.name);
            let text = self.text_of(&tag)?;
            match tag.name {
                "Key" => key = Some(text),
                "VersionId" => version = Some(text),
                _ => {}
            }
        }
        let key = key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| bad("an <Object> without a <Key>, or with an empty one"))?;
        if version.as_deref() == Some("") {
            return Err(bad("an empty <VersionId>"));
        }
        Ok((key, version.is_some()))
    }
}

/// Character data with the five predefined entities and character references decoded.
/// Raw carriage returns (which XML normalises to line feeds), other control characters and
/// `]]>` are refused.
fn decode_text(raw: &str) -> Result<String, Unclear> {
    if let Some(c) = raw.chars().find(|&c| !is_xml_char(c)) {
        return Err(bad(&format!("the character U+{:04X}", c as u32)));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find(['&', '\r', ']']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with('\r') {
            return Err(bad("a raw carriage return in text: send &#13;"));
        }
        if let Some(after) = tail.strip_prefix(']') {
            if after.starts_with("]>") {
                return Err(bad("']]>' in text"));
            }
            out.push(']');
            rest = after;
            continue;
        }
        // The longest reference, `&#x10FFFF;`, is 10 bytes.
        let Some(semi) = tail.bytes().take(12).position(|b| b == b';') else {
            return Err(bad("an '&' that starts no entity"));
        };
        let entity = &tail[1..semi];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => char_reference(entity)
                .ok_or_else(|| bad(&format!("the entity &{entity}; is not one XML defines")))?,
        };
        out.push(c);
        rest = &tail[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `#NN` or `#xHH`, to a character XML allows.
fn char_reference(entity: &str) -> Option<char> {
    let number = entity.strip_prefix('#')?;
    let (digits, radix) = match number.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let c = char::from_u32(u32::from_str_radix(digits, radix).ok()?)?;
    is_xml_char(c).then_some(c)
}

/// XML 1.0's `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r')
        || matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
#[path = "delete_tests.rs"]
mod tests;
