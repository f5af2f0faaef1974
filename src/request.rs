//! The request body, its metadata values, and client-side validation.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::Error;
use crate::violation::Violation;

/// The body of one Assistant SMS Chat call, plus the idempotency key that travels beside it.
///
/// Only `from` and `to` are required; every other field is omitted from the JSON when it is
/// not set (never sent as `null`). Build one with [`SendSmsRequest::new`] and the chained
/// setters (each named after the field it sets), read or change the public fields directly,
/// or deserialize one from JSON (unknown fields are refused, so a typo such as
/// `"txt"` is an error instead of a silently different message).
///
/// ```
/// use telnyx_assistant_sms::SendSmsRequest;
///
/// let req = SendSmsRequest::new("+15550001111", "+15550002222")
///     .text("Your table is ready")
///     .metadata("ticket", "T-1")
///     .metadata("party_size", 4)
///     .metadata("vip", true)
///     .should_create_conversation(true);
/// req.validate()?;
/// assert_eq!(req.text.as_deref(), Some("Your table is ready"));
///
/// // A script can keep requests as JSON.
/// let loaded: SendSmsRequest = serde_json::from_str(
///     r#"{"from":"+15550001111","to":"+15550002222","conversation_metadata":{"n":3}}"#,
/// ).unwrap();
/// assert_eq!(loaded.conversation_metadata["n"], 3.into());
/// # Ok::<(), telnyx_assistant_sms::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SendSmsRequest {
    /// The sender: one of your Telnyx numbers. Required.
    ///
    /// JSON may leave it out and have a flag (or code) fill it in; if nobody does, validation
    /// reports it `missing` ("field required"), where an empty string given is `blank` ("must
    /// not be empty").
    pub from: String,
    /// The recipient's number. Required (left out of JSON, it is `missing`, as `from` is).
    pub to: String,
    /// The text to send; `None` lets the assistant greet or generate it. A JSON `null` reads
    /// as `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Conversation metadata; omitted from the body when empty. In JSON read by serde, a key
    /// given twice is an error naming it (as a field given twice is), never a silent "last
    /// one wins".
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub conversation_metadata: BTreeMap<String, MetadataValue>,
    /// Whether the server creates a new conversation first; omitted when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub should_create_conversation: Option<bool>,
    /// Sent as the `Idempotency-Key` header, never in the HTTP body. In this type's own JSON
    /// form (serde) it is the field `"idempotency_key"`, omitted when `None`, so a request
    /// kept as JSON keeps its key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Which of `from` and `to` the JSON it was read from left out.
    #[serde(skip)]
    left_out: LeftOut,
}

/// Which of `from` and `to` the JSON a request was read from left out, so that validation
/// can tell a field nobody gave (`missing`) from one given empty (`blank`). Not part of the
/// request's value: every two compare equal, and neither `Debug` nor JSON shows it.
#[derive(Clone, Copy, Default)]
struct LeftOut {
    from: bool,
    to: bool,
}

impl PartialEq for LeftOut {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for LeftOut {}

impl fmt::Debug for SendSmsRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendSmsRequest")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("text", &self.text)
            .field("conversation_metadata", &self.conversation_metadata)
            .field(
                "should_create_conversation",
                &self.should_create_conversation,
            )
            .field("idempotency_key", &self.idempotency_key)
            .finish()
    }
}

/// [`SendSmsRequest`] as JSON holds it: `from` and `to` may be left out (and are then
/// `None`); unknown fields are refused. Named as the request, so serde's messages are the
/// same.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "SendSmsRequest")]
struct RequestJson {
    #[serde(default, deserialize_with = "given")]
    from: Option<String>,
    #[serde(default, deserialize_with = "given")]
    to: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default, deserialize_with = "unique_keys")]
    conversation_metadata: BTreeMap<String, MetadataValue>,
    #[serde(default)]
    should_create_conversation: Option<bool>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// A field that is there: a string (`null` is refused, as for any string field).
fn given<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

impl<'de> Deserialize<'de> for SendSmsRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = RequestJson::deserialize(d)?;
        Ok(SendSmsRequest {
            left_out: LeftOut {
                from: j.from.is_none(),
                to: j.to.is_none(),
            },
            from: j.from.unwrap_or_default(),
            to: j.to.unwrap_or_default(),
            text: j.text,
            conversation_metadata: j.conversation_metadata,
            should_create_conversation: j.should_create_conversation,
            idempotency_key: j.idempotency_key,
        })
    }
}

/// `conversation_metadata` from JSON, refusing a key that appears twice: serde's own map
/// keeps the last value silently, so `{"a":"1","a":"2"}` would send `"a":"2"`.
fn unique_keys<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, MetadataValue>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = BTreeMap<String, MetadataValue>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of metadata values")
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                let value = map.next_value::<MetadataValue>()?;
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format_args!(
                        "duplicate metadata key `{}` in conversation_metadata",
                        crate::text::Clean(&key, 100)
                    )));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

/// The HTTP body: the request's fields without the idempotency key, which is a header.
#[derive(Serialize)]
struct WireBody<'a> {
    from: &'a str,
    to: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    conversation_metadata: &'a BTreeMap<String, MetadataValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    should_create_conversation: Option<bool>,
}

impl SendSmsRequest {
    /// A request from the messaging number `from` (one of your Telnyx numbers) to `to`.
    ///
    /// Nothing is checked here; [`validate`](Self::validate) and every send check it.
    #[must_use]
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Self {
        SendSmsRequest {
            from: from.into(),
            to: to.into(),
            text: None,
            conversation_metadata: BTreeMap::new(),
            should_create_conversation: None,
            idempotency_key: None,
            left_out: LeftOut::default(),
        }
    }

    /// Sets the sender number.
    #[must_use]
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = from.into();
        self.left_out.from = false;
        self
    }

    /// Sets the recipient number.
    #[must_use]
    pub fn to(mut self, to: impl Into<String>) -> Self {
        self.to = to.into();
        self.left_out.to = false;
        self
    }

    /// The text to send. Leave it unset to let the assistant send its greeting (on the first
    /// message of a conversation) or generate the text itself.
    ///
    /// Defaults to unset (omitted from the body).
    #[must_use]
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Adds one conversation metadata entry, replacing an earlier value for the same key.
    ///
    /// Values are strings, integers or booleans; anything else does not compile (there is no
    /// `From<f64>` for [`MetadataValue`]). Defaults to no metadata (omitted from the body).
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<MetadataValue>) -> Self {
        self.conversation_metadata.insert(key.into(), value.into());
        self
    }

    /// Adds one conversation metadata entry from a value that may not fit: a `u64`, `usize`,
    /// `i128` or `serde_json::Value` (whatever converts with `TryInto<MetadataValue>`), as
    /// well as everything [`metadata`](Self::metadata) takes.
    ///
    /// ```
    /// use telnyx_assistant_sms::SendSmsRequest;
    ///
    /// let items: usize = 3;
    /// let req = SendSmsRequest::new("+15550001111", "+15550002222").try_metadata("items", items)?;
    /// assert_eq!(req.conversation_metadata["items"].as_i64(), Some(3));
    /// assert!(req.try_metadata("big", u64::MAX).is_err());
    /// # Ok::<(), telnyx_assistant_sms::InvalidMetadataValue>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`InvalidMetadataValue`] when the value is an integer beyond `i64`, or a JSON value that
    /// is not a string, an integer or a boolean. The request is consumed either way.
    pub fn try_metadata<V>(
        mut self,
        key: impl Into<String>,
        value: V,
    ) -> Result<Self, InvalidMetadataValue>
    where
        V: TryInto<MetadataValue>,
        V::Error: Into<InvalidMetadataValue>,
    {
        let value = value.try_into().map_err(Into::into)?;
        self.conversation_metadata.insert(key.into(), value);
        Ok(self)
    }

    /// Replaces all conversation metadata at once.
    ///
    /// Defaults to no metadata (omitted from the body).
    #[must_use]
    pub fn conversation_metadata(mut self, metadata: BTreeMap<String, MetadataValue>) -> Self {
        self.conversation_metadata = metadata;
        self
    }

    /// Whether the server should create a new conversation (with the metadata) first.
    ///
    /// Defaults to unset (omitted from the body; the server's default applies).
    #[must_use]
    pub fn should_create_conversation(mut self, create: bool) -> Self {
        self.should_create_conversation = Some(create);
        self
    }

    /// Your own `Idempotency-Key` for this send: 1 to 255 characters of `A-Z a-z 0-9 _ - :`
    /// (as Telnyx documents: `^[A-Za-z0-9_:-]{1,255}$`).
    ///
    /// A server that honours keys replays a first *success* under the same key for 24 hours,
    /// so a script that derives the key from its own event id can be re-run after a crash
    /// that lost the answer. It is no promise against a server that ignores keys (this
    /// endpoint does not declare the header) or after an error answer: for that, keep a
    /// journal (`telnyx-sms send --journal`, or [`BatchOptions::journal`](crate::BatchOptions::journal)).
    /// The key is a header and never part of the JSON.
    ///
    /// Defaults to unset: the client then generates a fresh random key for each send (see
    /// [`ClientBuilder::auto_idempotency_key`](crate::ClientBuilder::auto_idempotency_key)).
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Checks every rule the client enforces before sending, and reports all violations at once.
    ///
    /// The rules: `from` and `to` present (not left out of the JSON the request was read from:
    /// `missing`), not empty or blank (`blank`) and free of control characters; `text`,
    /// when set, not blank; metadata keys not empty (values are typed, so they are always a
    /// string, an integer or a boolean); the idempotency key, when set, 1 to 255 characters of
    /// `A-Z a-z 0-9 _ - :`. [`Client::send_sms`](crate::Client::send_sms) runs the same check (and
    /// checks the assistant id), so calling this first is only needed to fail early.
    ///
    /// # Errors
    ///
    /// An [`ErrorKind::Validation`](crate::ErrorKind::Validation) error whose
    /// [`violations`](Error::violations) name each field the way the server's 422 does, for
    /// example `["body", "to"]`.
    pub fn validate(&self) -> Result<(), Error> {
        let mut violations = Vec::new();
        self.collect_violations(&mut violations);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Error::validation(violations))
        }
    }

    /// Writes the HTTP body: the JSON of every field that is set, the idempotency key left out
    /// (it travels as a header). Field order: `from`, `to`, `text`, `conversation_metadata`
    /// (keys sorted), `should_create_conversation`.
    pub(crate) fn write_wire_body(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(
            out,
            &WireBody {
                from: &self.from,
                to: &self.to,
                text: self.text.as_deref(),
                conversation_metadata: &self.conversation_metadata,
                should_create_conversation: self.should_create_conversation,
            },
        )
    }

    pub(crate) fn collect_violations(&self, out: &mut Vec<Violation>) {
        check_number("from", &self.from, self.left_out.from, out);
        check_number("to", &self.to, self.left_out.to, out);
        if let Some(text) = &self.text {
            if text.trim().is_empty() {
                out.push(Violation::new(
                    &["body", "text"],
                    "must not be blank; leave it unset to let the assistant greet or generate the text",
                    "blank",
                ));
            }
        }
        for key in self.conversation_metadata.keys() {
            if key.trim().is_empty() {
                out.push(Violation::new(
                    &["body", "conversation_metadata", key],
                    "metadata keys must not be empty",
                    "blank",
                ));
            }
        }
        if let Some(key) = &self.idempotency_key {
            if let Some(problem) = idempotency_key_problem(key) {
                out.push(Violation::new(
                    &["header", "Idempotency-Key"],
                    problem,
                    "invalid_idempotency_key",
                ));
            }
        }
    }
}

/// `left_out`: the JSON the request was read from had no such field.
fn check_number(field: &str, value: &str, left_out: bool, out: &mut Vec<Violation>) {
    if value.is_empty() && left_out {
        out.push(Violation::new(
            &["body", field],
            "field required",
            "missing",
        ));
    } else if value.is_empty() {
        out.push(Violation::new(
            &["body", field],
            "must not be empty",
            "blank",
        ));
    } else if value.trim().is_empty() {
        out.push(Violation::new(
            &["body", field],
            "must not be blank",
            "blank",
        ));
    } else if value.chars().any(char::is_control) {
        out.push(Violation::new(
            &["body", field],
            "must not contain control characters",
            "control_character",
        ));
    }
}

/// Why `key` breaks the server's idempotency-key contract, or `None` if it is fine.
pub(crate) fn idempotency_key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() || key.len() > 255 {
        Some("must be 1 to 255 characters long")
    } else if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'))
    {
        Some("may only contain A-Z, a-z, 0-9, '_', '-' and ':'")
    } else {
        None
    }
}

/// One conversation metadata value: the server accepts a string, an integer or a boolean.
///
/// Floats, `null`, arrays and objects are not representable: there is no `From` for them, and
/// deserializing or converting one (`TryFrom<serde_json::Value>`) is an error.
///
/// ```
/// use telnyx_assistant_sms::MetadataValue;
///
/// assert_eq!(MetadataValue::from("02134"), MetadataValue::String("02134".into()));
/// assert_eq!(MetadataValue::from(3), MetadataValue::Integer(3));
/// assert_eq!(MetadataValue::from(true), MetadataValue::Boolean(true));
/// assert!(MetadataValue::try_from(serde_json::json!(1.5)).is_err());
/// ```
///
/// New kinds may be added in a minor release (should the API accept them), so a `match` on it
/// needs a `_` arm.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetadataValue {
    /// A JSON string.
    String(String),
    /// A JSON integer that fits in an `i64`.
    Integer(i64),
    /// A JSON boolean.
    Boolean(bool),
}

impl MetadataValue {
    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            MetadataValue::Integer(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            MetadataValue::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}

impl fmt::Display for MetadataValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataValue::String(s) => f.write_str(s),
            MetadataValue::Integer(n) => write!(f, "{n}"),
            MetadataValue::Boolean(b) => write!(f, "{b}"),
        }
    }
}

impl Serialize for MetadataValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MetadataValue::String(v) => s.serialize_str(v),
            MetadataValue::Integer(v) => s.serialize_i64(*v),
            MetadataValue::Boolean(v) => s.serialize_bool(*v),
        }
    }
}

const EXPECTED: &str = "a string, an integer or a boolean";

impl<'de> Deserialize<'de> for MetadataValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetadataValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MetadataValue, E> {
                Ok(MetadataValue::String(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<MetadataValue, E> {
                Ok(MetadataValue::String(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MetadataValue, E> {
                Ok(MetadataValue::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MetadataValue, E> {
                i64::try_from(v)
                    .map(MetadataValue::Integer)
                    .map_err(|_| E::custom(format_args!("integer {v} does not fit in an i64")))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<MetadataValue, E> {
                Ok(MetadataValue::Boolean(v))
            }
            // Floats, null, sequences and maps fall through to serde's "invalid type" error,
            // which names what was found and what was expected.
        }
        d.deserialize_any(V)
    }
}

macro_rules! from_lossless {
    ($variant:ident: $($t:ty),*) => {$(
        impl From<$t> for MetadataValue {
            fn from(v: $t) -> Self {
                MetadataValue::$variant(v.into())
            }
        }
    )*};
}
from_lossless!(String: String, &str, &String, Box<str>, std::borrow::Cow<'_, str>);
from_lossless!(Integer: i8, i16, i32, i64, u8, u16, u32);
from_lossless!(Boolean: bool);

/// The error for a value that is not a string, an integer that fits in `i64`, or a boolean.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidMetadataValue {
    found: &'static str,
}

impl InvalidMetadataValue {
    /// What kind of value was refused (`"float"`, `"null"`, `"array"`, `"object"`, or
    /// `"integer out of range"`).
    pub fn found(&self) -> &'static str {
        self.found
    }
}

impl fmt::Display for InvalidMetadataValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "metadata values must be {EXPECTED}, found {}",
            self.found
        )
    }
}

impl std::error::Error for InvalidMetadataValue {}

/// For [`SendSmsRequest::try_metadata`] with a value whose conversion cannot fail.
impl From<std::convert::Infallible> for InvalidMetadataValue {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

macro_rules! try_from_wide_int {
    ($($t:ty),*) => {$(
        impl TryFrom<$t> for MetadataValue {
            type Error = InvalidMetadataValue;
            fn try_from(v: $t) -> Result<Self, InvalidMetadataValue> {
                i64::try_from(v)
                    .map(MetadataValue::Integer)
                    .map_err(|_| InvalidMetadataValue { found: "integer out of range" })
            }
        }
    )*};
}
try_from_wide_int!(u64, usize, isize, i128, u128);

impl TryFrom<serde_json::Value> for MetadataValue {
    type Error = InvalidMetadataValue;

    fn try_from(v: serde_json::Value) -> Result<Self, InvalidMetadataValue> {
        use serde_json::Value;
        match v {
            Value::String(s) => Ok(MetadataValue::String(s)),
            Value::Bool(b) => Ok(MetadataValue::Boolean(b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Ok(MetadataValue::Integer(i)),
                None if n.is_f64() => Err(InvalidMetadataValue { found: "float" }),
                None => Err(InvalidMetadataValue {
                    found: "integer out of range",
                }),
            },
            Value::Null => Err(InvalidMetadataValue { found: "null" }),
            Value::Array(_) => Err(InvalidMetadataValue { found: "array" }),
            Value::Object(_) => Err(InvalidMetadataValue { found: "object" }),
        }
    }
}

impl From<MetadataValue> for serde_json::Value {
    fn from(v: MetadataValue) -> Self {
        match v {
            MetadataValue::String(s) => s.into(),
            MetadataValue::Integer(n) => n.into(),
            MetadataValue::Boolean(b) => b.into(),
        }
    }
}
