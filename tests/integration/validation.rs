//! Every client-side rule: the right violation, the right field, and nothing on the wire.

use mockito::Matcher;
use serde_json::json;
use telnyx_assistant_sms::{ErrorKind, MetadataValue, SendSmsRequest};

use crate::client;

/// Sends `req` to `id` and asserts that it fails validation without any request reaching the
/// server; returns the violations as (field, code) pairs.
fn refused(id: &str, req: &SendSmsRequest) -> Vec<(String, String)> {
    let mut server = mockito::Server::new();
    let any = server
        .mock("POST", Matcher::Any)
        .with_body("{}")
        .expect(0)
        .create();
    let err = client(&server).send_sms(id, req).unwrap_err();
    any.assert();
    assert_eq!(err.kind(), ErrorKind::Validation, "{err}");
    assert_eq!(err.attempts(), 0);
    assert!(!err.may_have_been_sent());
    // `validate()` agrees on the request's own rules.
    if id == "asst" {
        assert_eq!(
            req.validate().unwrap_err().violations(),
            err.violations(),
            "validate() and send disagree"
        );
    }
    err.violations()
        .iter()
        .map(|v| (v.field(), v.code().to_owned()))
        .collect()
}

fn one(field: &str, code: &str) -> Vec<(String, String)> {
    vec![(field.to_owned(), code.to_owned())]
}

#[test]
fn from_and_to_are_required() {
    // Left out of the JSON: missing.
    let left_out: SendSmsRequest = serde_json::from_str(r#"{"text":"hi"}"#).unwrap();
    assert_eq!(
        refused("asst", &left_out),
        vec![
            ("body.from".into(), "missing".into()),
            ("body.to".into(), "missing".into())
        ]
    );
    let err = left_out.validate().unwrap_err();
    assert_eq!(err.violations()[0].message(), "field required");
    // Given, but empty (in JSON or in code): blank, said to be empty.
    let empty: SendSmsRequest = serde_json::from_str(r#"{"from":"","to":""}"#).unwrap();
    for req in [&empty, &SendSmsRequest::new("", "")] {
        assert_eq!(
            refused("asst", req),
            vec![
                ("body.from".into(), "blank".into()),
                ("body.to".into(), "blank".into())
            ]
        );
        let err = req.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid request, nothing was sent: body.from: must not be empty; body.to: must \
             not be empty"
        );
    }
    // Filled in later by the setter: no longer missing; the left-out mark is no part of the
    // request's value.
    let filled = left_out.clone().from("+15550001111").to("+15550002222");
    assert!(filled.validate().is_ok());
    assert_eq!(
        filled,
        SendSmsRequest::new("+15550001111", "+15550002222").text("hi")
    );
    assert_eq!(
        format!("{left_out:?}"),
        format!("{:?}", SendSmsRequest::new("", "").text("hi"))
    );
}

#[test]
fn from_and_to_not_blank() {
    assert_eq!(
        refused("asst", &SendSmsRequest::new("  ", "+1")),
        one("body.from", "blank")
    );
    assert_eq!(
        refused("asst", &SendSmsRequest::new("+1", "\t")),
        one("body.to", "blank")
    );
}

#[test]
fn from_and_to_without_control_characters() {
    assert_eq!(
        refused("asst", &SendSmsRequest::new("+1\n", "+2")),
        one("body.from", "control_character")
    );
    assert_eq!(
        refused("asst", &SendSmsRequest::new("+1", "+2\u{0}")),
        one("body.to", "control_character")
    );
}

#[test]
fn text_when_set_is_not_blank() {
    assert_eq!(
        refused("asst", &SendSmsRequest::new("+1", "+2").text(" \n ")),
        one("body.text", "blank")
    );
}

#[test]
fn metadata_keys_not_empty() {
    assert_eq!(
        refused("asst", &SendSmsRequest::new("+1", "+2").metadata("", 1)),
        one("body.conversation_metadata.", "blank")
    );
}

#[test]
fn assistant_id_not_blank_nor_a_dot_segment() {
    let req = SendSmsRequest::new("+1", "+2");
    assert_eq!(refused("", &req), one("path.assistant_id", "blank"));
    assert_eq!(refused(" ", &req), one("path.assistant_id", "blank"));
    assert_eq!(refused(".", &req), one("path.assistant_id", "dot_segment"));
    assert_eq!(refused("..", &req), one("path.assistant_id", "dot_segment"));
}

#[test]
fn malformed_idempotency_key_is_refused_locally() {
    for key in ["", "has space", "ünï", "a/b", &"k".repeat(256)] {
        assert_eq!(
            refused(
                "asst",
                &SendSmsRequest::new("+1", "+2").idempotency_key(key)
            ),
            one("header.Idempotency-Key", "invalid_idempotency_key"),
            "{key:?}"
        );
    }
    // The boundaries of the contract are accepted.
    for key in ["a", "A-z_09", &"k".repeat(255)] {
        SendSmsRequest::new("+1", "+2")
            .idempotency_key(key)
            .validate()
            .unwrap();
    }
}

#[test]
fn every_violation_is_reported_at_once() {
    let req = SendSmsRequest::new("", " ").text("").metadata(" ", "x");
    let found = refused("..", &req);
    assert_eq!(
        found,
        vec![
            ("path.assistant_id".into(), "dot_segment".into()),
            ("body.from".into(), "blank".into()),
            ("body.to".into(), "blank".into()),
            ("body.text".into(), "blank".into()),
            ("body.conversation_metadata. ".into(), "blank".into()),
        ]
    );
    let err = req.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid request, nothing was sent: body.from: must not be empty; body.to: must not be blank; \
         body.text: must not be blank; leave it unset to let the assistant greet or generate the text; \
         and 1 more"
    );
    assert_eq!(err.violation_count(), 4);
    assert_eq!(err.violations()[0].path(), ["body", "from"]);
}

#[test]
fn metadata_values_refuse_floats_null_arrays_objects_everywhere() {
    for (bad, found) in [
        (json!(1.5), "float"),
        (json!(null), "null"),
        (json!([1]), "array"),
        (json!({"a": 1}), "object"),
        (json!(u64::MAX), "integer out of range"),
    ] {
        // TryFrom<serde_json::Value>
        let err = MetadataValue::try_from(bad.clone()).unwrap_err();
        assert_eq!(err.found(), found);
        assert_eq!(
            err.to_string(),
            format!("metadata values must be a string, an integer or a boolean, found {found}")
        );
        // Deserializing a request
        let doc = json!({"from": "+1", "to": "+2", "conversation_metadata": {"score": bad}});
        let err = serde_json::from_value::<SendSmsRequest>(doc).unwrap_err();
        assert!(
            err.to_string().contains("string, an integer or a boolean")
                || err.to_string().contains("does not fit in an i64"),
            "{err}"
        );
    }
    // Wide integers go through TryFrom only.
    assert_eq!(MetadataValue::try_from(7u64), Ok(MetadataValue::Integer(7)));
    assert!(MetadataValue::try_from(u64::MAX).is_err());
    assert_eq!(
        MetadataValue::try_from(json!(i64::MIN)),
        Ok(MetadataValue::Integer(i64::MIN))
    );
}

#[test]
fn deserializing_a_request_refuses_unknown_fields_and_keeps_types() {
    let err =
        serde_json::from_value::<SendSmsRequest>(json!({"from": "+1", "to": "+2", "txt": "hi"}))
            .unwrap_err();
    assert!(err.to_string().contains("unknown field `txt`"), "{err}");
    let req: SendSmsRequest = serde_json::from_value(json!({
        "from": "+1", "to": "+2", "text": null,
        "conversation_metadata": {"s": "02134", "i": 3, "b": false}
    }))
    .unwrap();
    assert_eq!(req.text, None);
    assert_eq!(
        req.conversation_metadata["s"],
        MetadataValue::String("02134".into())
    );
    assert_eq!(req.conversation_metadata["i"], MetadataValue::Integer(3));
    assert_eq!(
        req.conversation_metadata["b"],
        MetadataValue::Boolean(false)
    );
    // And it round-trips.
    let again: SendSmsRequest = serde_json::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap();
    assert_eq!(again, req);
}
