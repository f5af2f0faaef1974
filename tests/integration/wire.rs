//! What goes on the wire: path, headers and body, exactly.

use mockito::{Matcher, Mock, Server};
use serde_json::json;
use telnyx_assistant_sms::{Client, SendSmsRequest, SendSmsResponse};

use crate::{KEY, client};

const PATH: &str = "/v2/ai/assistants/asst-1/chat/sms";
const CONV_1: &str = r#"{"conversation_id":"conv-1"}"#;

/// Sends `req` through `client` to a mock of the call, narrowed by `matching`, that answers
/// `answer`; asserts that the mock was hit exactly once.
fn send_once(
    server: &mut Server,
    client: &Client,
    req: &SendSmsRequest,
    matching: impl FnOnce(Mock) -> Mock,
    answer: &str,
) -> SendSmsResponse {
    let m = matching(server.mock("POST", PATH))
        .with_body(answer)
        .expect(1)
        .create();
    let res = client.send_sms("asst-1", req).unwrap();
    m.assert();
    res
}

fn minimal() -> SendSmsRequest {
    SendSmsRequest::new("+1", "+2")
}

#[test]
fn full_request_has_exact_path_headers_and_body() {
    let mut server = Server::new();
    let req = SendSmsRequest::new("+15550001111", "+15550002222")
        .text("Hello")
        .metadata("ticket", "T-1")
        .metadata("attempt", 3)
        .metadata("vip", true)
        .should_create_conversation(true);
    let matching = |m: Mock| {
        m.match_header("authorization", format!("Bearer {KEY}").as_str())
            .match_header("content-type", "application/json")
            .match_header("accept", "application/json")
            .match_header(
                "user-agent",
                concat!("telnyx-assistant-sms/", env!("CARGO_PKG_VERSION")),
            )
            .match_header("x-stainless-retry-count", "0")
            .match_header("idempotency-key", Matcher::Regex("^[0-9a-f]{32}$".into()))
            .match_body(Matcher::Json(json!({
                "from": "+15550001111",
                "to": "+15550002222",
                "text": "Hello",
                "conversation_metadata": {"ticket": "T-1", "attempt": 3, "vip": true},
                "should_create_conversation": true
            })))
            .with_status(200)
            .with_header("x-request-id", "req-full")
    };
    let client = client(&server);
    let res = send_once(&mut server, &client, &req, matching, CONV_1);
    assert_eq!(res.conversation_id.as_deref(), Some("conv-1"));
    assert_eq!(res.request_id.as_deref(), Some("req-full"));
}

#[test]
fn minimal_request_omits_unset_fields() {
    let mut server = Server::new();
    let client = client(&server);
    let res = send_once(
        &mut server,
        &client,
        &SendSmsRequest::new("+15550001111", "+15550002222"),
        |m| {
            m.match_request(|r| {
                r.utf8_lossy_body().unwrap() == r#"{"from":"+15550001111","to":"+15550002222"}"#
            })
            .with_status(200)
        },
        r#"{"conversation_id":"conv-2"}"#,
    );
    assert_eq!(res.conversation_id.as_deref(), Some("conv-2"));
}

#[test]
fn trailing_slash_on_base_url_changes_nothing() {
    let mut server = Server::new();
    let client = crate::builder(&format!("{}/v2///", server.url()))
        .build()
        .unwrap();
    send_once(&mut server, &client, &minimal(), |m| m, "{}");
}

#[test]
fn hostile_assistant_ids_stay_one_path_segment() {
    let mut server = Server::new();
    let cases = [
        ("../numbers", "/v2/ai/assistants/..%2Fnumbers/chat/sms"),
        ("a/b?c", "/v2/ai/assistants/a%2Fb%3Fc/chat/sms"),
        ("a b#c%d", "/v2/ai/assistants/a%20b%23c%25d/chat/sms"),
        ("x,y;z=1", "/v2/ai/assistants/x%2Cy%3Bz%3D1/chat/sms"),
        ("ünï", "/v2/ai/assistants/%C3%BCn%C3%AF/chat/sms"),
        ("...", "/v2/ai/assistants/.../chat/sms"),
    ];
    let client = client(&server);
    for (id, path) in cases {
        // Exact path match, and no query string at all.
        let m = server
            .mock("POST", path)
            .match_query(Matcher::Missing)
            .with_body("{}")
            .expect(1)
            .create();
        client
            .send_sms(id, &SendSmsRequest::new("+1", "+2"))
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        m.assert();
        m.remove();
    }
}

#[test]
fn caller_idempotency_key_is_a_header_not_body() {
    let mut server = Server::new();
    let client = client(&server);
    let req = minimal().idempotency_key("order-42_a");
    let matching = |m: Mock| {
        m.match_header("idempotency-key", "order-42_a")
            .match_body(Matcher::Json(json!({"from": "+1", "to": "+2"})))
    };
    send_once(&mut server, &client, &req, matching, "{}");
}

#[test]
fn no_idempotency_key_when_automatic_keys_are_off() {
    let mut server = Server::new();
    let client = crate::builder(&format!("{}/v2", server.url()))
        .auto_idempotency_key(false)
        .build()
        .unwrap();
    let matching = |m: Mock| m.match_header("idempotency-key", Matcher::Missing);
    send_once(&mut server, &client, &minimal(), matching, "{}");
}

#[test]
fn ok_with_unknown_fields_and_without_conversation_id() {
    let mut server = Server::new();
    let client = client(&server);
    let answer = r#"{"conversation_id":"c-9","status":"queued","extra":{"a":[1]}}"#;
    let res = send_once(&mut server, &client, &minimal(), |m| m, answer);
    assert_eq!(res.conversation_id.as_deref(), Some("c-9"));

    let answer = r#"{"status":"queued"}"#;
    let res = send_once(&mut server, &client, &minimal(), |m| m, answer);
    assert_eq!(res.conversation_id, None);
}

#[test]
fn request_loaded_from_json_is_sent_as_given() {
    let mut server = Server::new();
    let client = client(&server);
    let body =
        json!({"from": "+1", "to": "+2", "conversation_metadata": {"zip": "02134", "n": -7}});
    let req: SendSmsRequest = serde_json::from_value(body.clone()).unwrap();
    send_once(
        &mut server,
        &client,
        &req,
        |m| m.match_body(Matcher::Json(body)),
        "{}",
    );
}

#[test]
fn a_request_kept_as_json_keeps_its_key_but_the_body_never_carries_it() {
    let req = SendSmsRequest::new("+15550001111", "+15550002222")
        .text("Hi")
        .idempotency_key("order-1042");
    let kept = serde_json::to_string(&req).unwrap();
    assert_eq!(
        kept,
        r#"{"from":"+15550001111","to":"+15550002222","text":"Hi","idempotency_key":"order-1042"}"#
    );
    let back: SendSmsRequest = serde_json::from_str(&kept).unwrap();
    assert_eq!(back, req);

    let mut server = Server::new();
    let client = client(&server);
    let matching = |m: Mock| {
        m.match_header("idempotency-key", "order-1042")
            .match_body(Matcher::Exact(
                r#"{"from":"+15550001111","to":"+15550002222","text":"Hi"}"#.into(),
            ))
    };
    let res = send_once(&mut server, &client, &back, matching, CONV_1);
    assert_eq!(
        (res.attempts, res.conversation_id.as_deref()),
        (1, Some("conv-1"))
    );
}

#[test]
fn unsigned_and_json_metadata_go_through_try_metadata() {
    use telnyx_assistant_sms::serde_json as sj;
    let req = SendSmsRequest::new("+1", "+2")
        .try_metadata("count", 7usize)
        .unwrap()
        .try_metadata("flag", sj::json!(true))
        .unwrap()
        .try_metadata("name", "x")
        .unwrap();
    assert_eq!(req.conversation_metadata["count"].as_i64(), Some(7));
    assert_eq!(req.conversation_metadata["flag"].as_bool(), Some(true));
    assert_eq!(req.conversation_metadata["name"].as_str(), Some("x"));
    assert_eq!(req.conversation_metadata["name"].as_i64(), None);
    let err = SendSmsRequest::new("+1", "+2")
        .try_metadata("n", sj::json!(1.5))
        .unwrap_err();
    assert_eq!(err.found(), "float");
    let err = SendSmsRequest::new("+1", "+2")
        .try_metadata("n", u64::MAX)
        .unwrap_err();
    assert_eq!(err.found(), "integer out of range");
}
