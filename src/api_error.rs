//! The server's error bodies: the Telnyx envelope's entries ([`ApiErrorEntry`]), the 422
//! `detail` list (read into [`Violation`]s), their lenient streaming parser, and the summary of
//! what the server said that an error's one line quotes.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::text::Clean;
use crate::violation::{Violation, write_violations};

/// One entry of the Telnyx error envelope `{"errors":[{"code","title","detail","source":{"pointer"},"meta"}]}`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiErrorEntry {
    pub(crate) code: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) detail: Option<String>,
    pub(crate) pointer: Option<String>,
    pub(crate) meta: Option<serde_json::Value>,
}

impl ApiErrorEntry {
    /// An entry with nothing in it yet, for the error body's parser to fill.
    pub(crate) fn empty() -> Self {
        ApiErrorEntry {
            code: None,
            title: None,
            detail: None,
            pointer: None,
            meta: None,
        }
    }

    /// Telnyx's error code, such as `"10009"` (a numeric code is given as its digits).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
    /// The short title, such as `"Authentication failed"`.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }
    /// The longer explanation.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
    /// The JSON pointer of the offending field (`source.pointer`), such as `"/to"`.
    pub fn pointer(&self) -> Option<&str> {
        self.pointer.as_deref()
    }
    /// Anything else the server put in `meta` (often a documentation URL).
    pub fn meta(&self) -> Option<&serde_json::Value> {
        self.meta.as_ref()
    }
}

/// One line: `title: detail (at pointer) (code c)`, control characters escaped and each part
/// cut (title 150, detail 250, pointer and code 60 characters): the text comes from a server.
/// The accessors give the full text.
impl fmt::Display for ApiErrorEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = false;
        if let Some(t) = &self.title {
            write!(f, "{}", Clean(t, 150))?;
            wrote = true;
        }
        if let Some(d) = self
            .detail
            .as_ref()
            .filter(|d| Some(*d) != self.title.as_ref())
        {
            if wrote {
                f.write_str(": ")?;
            }
            write!(f, "{}", Clean(d, 250))?;
            wrote = true;
        }
        if !wrote {
            f.write_str("unspecified error")?;
        }
        if let Some(p) = &self.pointer {
            write!(f, " (at {})", Clean(p, 60))?;
        }
        if let Some(c) = &self.code {
            write!(f, " (code {})", Clean(c, 60))?;
        }
        Ok(())
    }
}

/// The most entries of each kind kept from an error body (`errors` and `detail`).
pub(crate) const MAX_ENTRIES: usize = 100;
/// The most parts of one violation's `loc` kept.
const MAX_LOC_PARTS: usize = 32;
/// The largest `meta` (as JSON text) turned into a value; a larger one stays in the body only.
const MAX_META_BYTES: usize = 8 * 1024;

/// What an error body said, in both shapes Telnyx uses.
#[derive(Default)]
pub(crate) struct ParsedErrorBody {
    pub(crate) api_errors: Vec<ApiErrorEntry>,
    /// How many entries `errors` had (only the first [`MAX_ENTRIES`] are kept).
    pub(crate) api_error_count: usize,
    pub(crate) violations: Vec<Violation>,
    pub(crate) violation_count: usize,
    /// `{"detail": "text"}` (FastAPI's plain form) or `{"message": "text"}`.
    pub(crate) message: Option<String>,
}

/// Parses an error body leniently: any part that does not fit is skipped (and stays in
/// [`Error::body`](crate::Error::body)).
///
/// It streams: at most [`MAX_ENTRIES`] entries of each kind are built (the rest are only
/// counted), a `loc` keeps at most 32 parts, a `meta` is kept only up to 8 KiB, and no text
/// field goes through `serde_json::Value`. So a 1 MiB body of tens of thousands of entries
/// costs about its own size, not 75 times it.
pub(crate) fn parse_error_body(body: &str) -> ParsedErrorBody {
    serde_json::from_str::<Lenient<ParsedErrorBody>>(body)
        .ok()
        .and_then(|l| l.0)
        .unwrap_or_default()
}

/// A value that is `None` when its JSON is not an object: the shape did not fit, which is
/// not an error.
struct Lenient<T>(Option<T>);

/// Reads the fields of one object of type `T`, one call per key, into an empty one. (Not
/// `Default`: `Violation` and `ApiErrorEntry` are public, and an empty one means nothing to a
/// user.)
trait FromFields<'de> {
    fn empty() -> Self;
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

impl<'de, T: FromFields<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: FromFields<'de>> Visitor<'de> for V<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any json value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<T>, A::Error> {
                let mut out = T::empty();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    out.field(&key, &mut map)?;
                }
                Ok(Lenient(Some(out)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Lenient<T>, A::Error> {
                IgnoredAny.visit_seq(seq)?;
                Ok(Lenient(None))
            }
            scalars_give!(Lenient(None));
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// The visitor methods of every scalar JSON value, each giving `$value`.
macro_rules! scalars_give {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}
use scalars_give;

impl<'de> FromFields<'de> for ParsedErrorBody {
    fn empty() -> Self {
        ParsedErrorBody::default()
    }

    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "errors" => {
                let c: Capped<ApiErrorEntry> = map.next_value()?;
                (self.api_errors, self.api_error_count) = (c.kept, c.count);
            }
            "detail" => match map.next_value::<Detail>()? {
                Detail::List(c) => (self.violations, self.violation_count) = (c.kept, c.count),
                Detail::Text(t) => self.message = Some(t),
                Detail::Other => {}
            },
            // `detail` wins when both are there, whatever their order.
            "message" => {
                if let Some(t) = map.next_value::<Text>()?.0 {
                    self.message.get_or_insert(t);
                }
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de> FromFields<'de> for ApiErrorEntry {
    fn empty() -> Self {
        ApiErrorEntry::empty()
    }

    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "code" => self.code = map.next_value::<Text>()?.0,
            "title" => self.title = map.next_value::<Text>()?.0,
            "detail" => self.detail = map.next_value::<Text>()?.0,
            "source" => {
                if let Some(source) = map.next_value::<Lenient<Source>>()?.0 {
                    self.pointer = source.pointer;
                }
            }
            "meta" => {
                let raw: Box<RawValue> = map.next_value()?;
                if raw.get().len() <= MAX_META_BYTES && raw.get() != "null" {
                    self.meta = serde_json::from_str(raw.get()).ok();
                }
            }
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Source {
    pointer: Option<String>,
}

impl<'de> FromFields<'de> for Source {
    fn empty() -> Self {
        Source::default()
    }

    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        if key == "pointer" {
            self.pointer = map.next_value::<Text>()?.0;
        } else {
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

impl<'de> FromFields<'de> for Violation {
    fn empty() -> Self {
        Violation::empty()
    }

    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "loc" => self.path = map.next_value::<Loc>()?.0,
            "msg" => self.message = map.next_value::<Text>()?.0.unwrap_or_default(),
            "type" => self.code = map.next_value::<Text>()?.0.unwrap_or_default(),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// A JSON array of objects, of which the first [`MAX_ENTRIES`] are kept and all are counted;
/// other items are skipped, and anything that is not an array gives none.
struct Capped<T> {
    kept: Vec<T>,
    count: usize,
}

impl<T> Default for Capped<T> {
    fn default() -> Self {
        Capped {
            kept: Vec::new(),
            count: 0,
        }
    }
}

fn capped<'de, A: SeqAccess<'de>, T: FromFields<'de>>(mut seq: A) -> Result<Capped<T>, A::Error> {
    let mut c = Capped::default();
    loop {
        let item = if c.kept.len() < MAX_ENTRIES {
            match seq.next_element::<Lenient<T>>()? {
                Some(Lenient(Some(item))) => {
                    c.kept.push(item);
                    true
                }
                Some(Lenient(None)) => false,
                None => break,
            }
        } else {
            // Beyond the cap, only whether it is an object (which counts) is kept.
            match seq.next_element::<Lenient<Nothing>>()? {
                Some(l) => l.0.is_some(),
                None => break,
            }
        };
        c.count += usize::from(item);
    }
    Ok(c)
}

impl<'de, T: FromFields<'de>> Deserialize<'de> for Capped<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: FromFields<'de>> Visitor<'de> for V<T> {
            type Value = Capped<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any json value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Capped<T>, A::Error> {
                capped(seq)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Capped<T>, A::Error> {
                IgnoredAny.visit_map(map)?;
                Ok(Capped::default())
            }
            scalars_give!(Capped::default());
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An object whose fields are all skipped.
struct Nothing;

impl<'de> FromFields<'de> for Nothing {
    fn empty() -> Self {
        Nothing
    }

    fn field<A: MapAccess<'de>>(&mut self, _: &str, map: &mut A) -> Result<(), A::Error> {
        map.next_value::<IgnoredAny>().map(drop)
    }
}

/// `detail`: a list of violations (a 422) or a message.
enum Detail {
    List(Capped<Violation>),
    Text(String),
    Other,
}

impl<'de> Deserialize<'de> for Detail {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Detail;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any json value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Detail, A::Error> {
                capped(seq).map(Detail::List)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Detail, A::Error> {
                IgnoredAny.visit_map(map)?;
                Ok(Detail::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Detail, E> {
                Ok(Detail::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Detail, E> {
                Ok(Detail::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Detail, E> {
                Ok(Detail::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Detail, E> {
                Ok(Detail::Other)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Detail, E> {
                Ok(Detail::Text(v.to_owned()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Detail, E> {
                Ok(Detail::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// A value read as text: a string as is, a number or boolean as written, `null` as none, an
/// array or object as its JSON text (never built into a `serde_json::Value`).
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <Box<RawValue>>::deserialize(d)?;
        let raw = raw.get();
        Ok(Text(if raw.starts_with('"') {
            serde_json::from_str::<String>(raw).ok()
        } else if raw == "null" {
            None
        } else {
            Some(raw.to_owned())
        }))
    }
}

/// A violation's `loc`: its parts as text, at most [`MAX_LOC_PARTS`] of them.
struct Loc(Vec<String>);

impl<'de> Deserialize<'de> for Loc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any json value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loc, A::Error> {
                let mut parts = Vec::new();
                while parts.len() < MAX_LOC_PARTS {
                    match seq.next_element::<Text>()? {
                        Some(t) => parts.push(t.0.unwrap_or_else(|| "null".to_owned())),
                        None => return Ok(Loc(parts)),
                    }
                }
                let mut more = false;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    more = true;
                }
                if more {
                    parts.push("…".to_owned());
                }
                Ok(Loc(parts))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Loc, A::Error> {
                IgnoredAny.visit_map(map)?;
                Ok(Loc(Vec::new()))
            }
            scalars_give!(Loc(Vec::new()));
        }
        d.deserialize_any(V)
    }
}

/// The server's own words, for the one-line `Display`: its first error entry and first few
/// violations, each already one line, and the whole cut at 400 characters.
pub(crate) fn summarize(p: &ParsedErrorBody) -> Option<String> {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some(first) = p.api_errors.first() {
        let _ = write!(out, "{first}");
        if p.api_error_count > 1 {
            let _ = write!(out, "; and {} more", p.api_error_count - 1);
        }
    }
    if !p.violations.is_empty() {
        if !out.is_empty() {
            out.push_str("; ");
        }
        let _ = write_violations(&mut out, &p.violations, p.violation_count);
    }
    match (&p.message, out.is_empty()) {
        (Some(m), true) => Some(Clean(m, 400).to_string()),
        (_, true) => None,
        (_, false) => Some(Clean(&out, 400).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_with_numeric_code_and_meta() {
        let p = parse_error_body(
            r#"{"errors":[{"code":10009,"title":"Authentication failed","detail":"The API key is wrong","source":{"pointer":"/auth"},"meta":{"url":"u"}}]}"#,
        );
        assert_eq!(p.api_errors.len(), 1);
        let e = &p.api_errors[0];
        assert_eq!(e.code(), Some("10009"));
        assert_eq!(e.pointer(), Some("/auth"));
        assert_eq!(e.meta().unwrap()["url"], "u");
        assert_eq!(
            e.to_string(),
            "Authentication failed: The API key is wrong (at /auth) (code 10009)"
        );
    }

    #[test]
    fn detail_shapes() {
        let p =
            parse_error_body(r#"{"detail":[{"loc":["body","items",0],"msg":"bad","type":"t"}]}"#);
        assert_eq!(p.violations[0].path(), ["body", "items", "0"]);
        let p = parse_error_body(r#"{"detail":"Not Found"}"#);
        assert_eq!(p.message.as_deref(), Some("Not Found"));
        let p = parse_error_body("<html>");
        assert!(p.api_errors.is_empty() && p.violations.is_empty() && p.message.is_none());
    }
}
