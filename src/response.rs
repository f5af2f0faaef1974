//! A successful send's outcome, and the 2xx body it is read from.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// How a successful send went: the server's answer and what it took to get it.
///
/// Only a send makes one ([`Client::send_sms`](crate::Client::send_sms),
/// [`Client::send_prepared`](crate::Client::send_prepared), a batch): it is not read from
/// JSON, since the server's body holds only part of it, and a value read back would claim a
/// send of no attempts in no time.
///
/// ```no_run
/// use telnyx_assistant_sms::{Client, SendSmsRequest};
///
/// let client = Client::from_env()?;
/// let res = client.send_sms("assistant-id", &SendSmsRequest::new("+15550001111", "+15550002222"))?;
/// println!(
///     "conversation {:?} (request id {:?}) after {} attempt(s) in {:?}",
///     res.conversation_id, res.request_id, res.attempts, res.elapsed
/// );
/// # Ok::<(), telnyx_assistant_sms::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendSmsResponse {
    /// The conversation the SMS belongs to, from the answer's body. The API's schema does not
    /// mark it required, so a server that leaves it out gives `None` rather than an error.
    pub conversation_id: Option<String>,
    /// The answer's `x-request-id` header.
    pub request_id: Option<String>,
    /// How many HTTP attempts the send took: 1 unless a failure was retried.
    pub attempts: u32,
    /// How long the whole send took, waits between attempts included.
    pub elapsed: std::time::Duration,
}

impl SendSmsResponse {
    /// The outcome of the attempt that got `body`: one attempt in no time, until the send
    /// loop, which knows, sets both.
    pub(crate) fn from_body(body: SuccessBody, request_id: Option<String>) -> Self {
        SendSmsResponse {
            conversation_id: body.conversation_id,
            request_id,
            attempts: 1,
            elapsed: std::time::Duration::ZERO,
        }
    }
}

/// A 2xx answer's body as the server sends it (`AssistantSmsChatResponse` in the OpenAPI
/// file): the wire half of a [`SendSmsResponse`]. An object; unknown fields are ignored, so a
/// server that adds fields never breaks a caller. (serde's derive would also take an array,
/// reading `["c-1"]` as a conversation id.)
#[derive(Debug)]
pub(crate) struct SuccessBody {
    pub(crate) conversation_id: Option<String>,
}

impl<'de> Deserialize<'de> for SuccessBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SuccessBody;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with a conversation_id")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SuccessBody, A::Error> {
                let mut conversation_id = None;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "conversation_id" {
                        if conversation_id.is_some() {
                            return Err(de::Error::duplicate_field("conversation_id"));
                        }
                        conversation_id = Some(map.next_value::<Option<String>>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(SuccessBody {
                    conversation_id: conversation_id.flatten(),
                })
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_bodies() {
        let b: SuccessBody =
            serde_json::from_str(r#"{"conversation_id":"c-1","added_later":{"x":[1]}}"#).unwrap();
        assert_eq!(b.conversation_id.as_deref(), Some("c-1"));
        let b: SuccessBody = serde_json::from_str("{}").unwrap();
        assert_eq!(b.conversation_id, None);
        let b: SuccessBody = serde_json::from_str(r#"{"conversation_id":null}"#).unwrap();
        assert_eq!(b.conversation_id, None);
        assert!(serde_json::from_str::<SuccessBody>(r#"{"conversation_id":3}"#).is_err());
        assert!(serde_json::from_str::<SuccessBody>("[]").is_err());
        assert!(serde_json::from_str::<SuccessBody>(r#"["c-1"]"#).is_err());
        assert!(serde_json::from_str::<SuccessBody>(r#""c-1""#).is_err());
        assert!(
            serde_json::from_str::<SuccessBody>(r#"{"conversation_id":"a","conversation_id":"b"}"#)
                .is_err()
        );
        let res = SendSmsResponse::from_body(
            serde_json::from_str(r#"{"conversation_id":"c-2"}"#).unwrap(),
            Some("r-1".into()),
        );
        assert_eq!(res.conversation_id.as_deref(), Some("c-2"));
        assert_eq!(res.request_id.as_deref(), Some("r-1"));
        assert_eq!(res.attempts, 1);
    }
}
