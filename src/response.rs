//! The success body, and the parsing of the two error body shapes Telnyx uses.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiErrorEntry, Violation};

/// The server's answer to a successful send.
///
/// Unknown fields are ignored, so a server that adds fields never breaks a caller.
///
/// ```
/// use telnyx_assistant_sms::SendSmsResponse;
///
/// let res: SendSmsResponse =
///     serde_json::from_str(r#"{"conversation_id":"c-1","added_later":true}"#).unwrap();
/// assert_eq!(res.conversation_id.as_deref(), Some("c-1"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SendSmsResponse {
    /// The conversation the SMS belongs to. The schema does not mark it required, so a
    /// server that leaves it out gives `None` rather than an error.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// The `x-request-id` response header (not part of the JSON body).
    #[serde(skip)]
    pub request_id: Option<String>,
}

/// What an error body said, in both shapes Telnyx uses.
pub(crate) struct ParsedErrorBody {
    pub(crate) api_errors: Vec<ApiErrorEntry>,
    pub(crate) violations: Vec<Violation>,
    /// `{"detail": "text"}` (FastAPI's plain form) or `{"message": "text"}`.
    pub(crate) message: Option<String>,
}

/// Parses an error body leniently: any part that does not fit is left to [`Error::body`](crate::Error::body).
pub(crate) fn parse_error_body(body: &str) -> ParsedErrorBody {
    let mut out = ParsedErrorBody {
        api_errors: Vec::new(),
        violations: Vec::new(),
        message: None,
    };
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) else {
        return out;
    };
    if let Some(Value::Array(errors)) = map.get("errors") {
        out.api_errors = errors.iter().filter_map(api_error_entry).collect();
    }
    match map.get("detail") {
        Some(Value::Array(items)) => out.violations = items.iter().filter_map(violation).collect(),
        Some(Value::String(s)) => out.message = Some(s.clone()),
        _ => {}
    }
    if out.message.is_none() {
        if let Some(Value::String(s)) = map.get("message") {
            out.message = Some(s.clone());
        }
    }
    out
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn api_error_entry(v: &Value) -> Option<ApiErrorEntry> {
    let obj = v.as_object()?;
    Some(ApiErrorEntry {
        code: text(obj.get("code")),
        title: text(obj.get("title")),
        detail: text(obj.get("detail")),
        pointer: obj
            .get("source")
            .and_then(Value::as_object)
            .and_then(|s| text(s.get("pointer"))),
        meta: obj.get("meta").filter(|m| !m.is_null()).cloned(),
    })
}

fn violation(v: &Value) -> Option<Violation> {
    let obj = v.as_object()?;
    let path = match obj.get("loc") {
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(Violation::from_parts(
        path,
        text(obj.get("msg")).unwrap_or_default(),
        text(obj.get("type")).unwrap_or_default(),
    ))
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
