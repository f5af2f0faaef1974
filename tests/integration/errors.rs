//! Each error kind, with everything the server said kept.

use std::error::Error as _;

use telnyx_assistant_sms::{Error, ErrorKind, SendSmsRequest};

use crate::{KEY, client};

const PATH: &str = "/v2/ai/assistants/asst-1/chat/sms";

fn send_against(status: u16, content_type: &str, body: &str) -> Error {
    let mut server = mockito::Server::new();
    let m = server
        .mock("POST", PATH)
        .with_status(status as usize)
        .with_header("content-type", content_type)
        .with_header("x-request-id", "req-err-1")
        .with_body(body)
        .expect(1)
        .create();
    let err = client(&server)
        .send_sms("asst-1", &SendSmsRequest::new("+1", "+2").text("hi"))
        .unwrap_err();
    m.assert();
    assert_no_key(&err);
    err
}

/// The key appears in no rendering of the error, its sources included.
pub fn assert_no_key(err: &Error) {
    let mut texts = vec![err.to_string(), format!("{err:?}"), format!("{err:#?}")];
    let mut src = err.source();
    while let Some(s) = src {
        texts.push(s.to_string());
        texts.push(format!("{s:?}"));
        src = s.source();
    }
    for t in texts {
        assert!(!t.contains(KEY), "key leaked: {t}");
        assert!(!t.contains("secret0123"), "key leaked: {t}");
    }
}

#[test]
fn unauthorized_in_the_telnyx_envelope() {
    let err = send_against(
        401,
        "application/json",
        r#"{"errors":[{"code":"10009","title":"Authentication failed","detail":"The API key is invalid.","meta":{"url":"https://developers.telnyx.com/docs/overview/errors/10009"}}]}"#,
    );
    assert_eq!(err.kind(), ErrorKind::Api);
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.request_id(), Some("req-err-1"));
    assert_eq!(err.attempts(), 1);
    assert!(!err.may_have_been_sent());
    let e = &err.api_errors()[0];
    assert_eq!(e.code(), Some("10009"));
    assert_eq!(e.title(), Some("Authentication failed"));
    assert_eq!(e.detail(), Some("The API key is invalid."));
    assert!(
        e.meta().unwrap()["url"]
            .as_str()
            .unwrap()
            .ends_with("10009")
    );
    assert_eq!(
        err.to_string(),
        "api error: http 401 unauthorized: Authentication failed: The API key is invalid. (code 10009) (request id req-err-1)"
    );
    assert!(err.body().unwrap().contains("10009"));
    assert_eq!(err.body_json().unwrap()["errors"][0]["code"], "10009");
}

#[test]
fn not_found_in_the_envelope_with_a_pointer() {
    let err = send_against(
        404,
        "application/json",
        r#"{"errors":[{"code":"10005","title":"Resource not found","detail":"Assistant not found","source":{"pointer":"/assistant_id"}},{"code":"1","title":"second"}]}"#,
    );
    assert_eq!(err.kind(), ErrorKind::Api);
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.api_errors().len(), 2);
    assert_eq!(err.api_errors()[0].pointer(), Some("/assistant_id"));
    assert_eq!(
        err.to_string(),
        "api error: http 404 not found: Resource not found: Assistant not found (at /assistant_id) (code 10005); and 1 more (request id req-err-1)"
    );
}

#[test]
fn unprocessable_in_the_detail_shape() {
    let err = send_against(
        422,
        "application/json",
        r#"{"detail":[{"loc":["body","to"],"msg":"field required","type":"value_error.missing"},{"loc":["body","conversation_metadata","score"],"msg":"bad type","type":"type_error"}]}"#,
    );
    assert_eq!(err.kind(), ErrorKind::Api);
    assert_eq!(err.status(), Some(422));
    let v = err.violations();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].path(), ["body", "to"]);
    assert_eq!(v[0].message(), "field required");
    assert_eq!(v[0].code(), "value_error.missing");
    assert_eq!(v[1].field(), "body.conversation_metadata.score");
    assert!(err.api_errors().is_empty());
    assert_eq!(
        err.to_string(),
        "api error: http 422 unprocessable entity: body.to: field required; body.conversation_metadata.score: bad type (request id req-err-1)"
    );
}

#[test]
fn internal_server_error_may_have_sent() {
    let err = send_against(
        500,
        "application/json",
        r#"{"errors":[{"title":"Internal error"}]}"#,
    );
    assert_eq!(err.kind(), ErrorKind::Api);
    assert_eq!(err.status(), Some(500));
    assert!(err.may_have_been_sent());
    assert_eq!(
        err.to_string(),
        "api error: http 500 internal server error: Internal error (request id req-err-1); the sms may have been sent"
    );
}

#[test]
fn bad_gateway_with_an_html_page_keeps_the_page() {
    let page = "<html><body><h1>502 Bad Gateway</h1></body></html>";
    let err = send_against(502, "text/html", page);
    assert_eq!(err.kind(), ErrorKind::Api);
    assert_eq!(err.status(), Some(502));
    assert_eq!(err.body(), Some(page));
    assert!(err.api_errors().is_empty() && err.violations().is_empty());
    assert_eq!(
        err.to_string(),
        "api error: http 502 bad gateway (request id req-err-1); the sms may have been sent"
    );
}

#[test]
fn ok_that_is_not_json_is_a_decode_error() {
    let err = send_against(200, "text/plain", "queued!");
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(err.status(), Some(200));
    assert_eq!(err.body(), Some("queued!"));
    assert!(
        err.may_have_been_sent(),
        "a 2xx means the server accepted it"
    );
    // The cause is the JSON error, kept as the source, not repeated in Display.
    let src = err.source().expect("source");
    assert!(src.downcast_ref::<serde_json::Error>().is_some());
    assert_eq!(
        err.to_string(),
        "could not read the api's answer to an accepted request: http 200: the body is not the expected json (request id req-err-1)"
    );
}

#[test]
fn ok_whose_conversation_id_has_the_wrong_type_is_a_decode_error() {
    let err = send_against(200, "application/json", r#"{"conversation_id":7}"#);
    assert_eq!(err.kind(), ErrorKind::Decode);
}

#[test]
fn connection_refused_is_a_transport_error_that_sent_nothing() {
    let port = crate::support::closed_port();
    let client = crate::builder(&format!("http://{port}/v2"))
        .max_retries(0)
        .build()
        .unwrap();
    let err = client
        .send_sms("asst-1", &SendSmsRequest::new("+1", "+2"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(!err.may_have_been_sent());
    assert_eq!(err.status(), None);
    assert_eq!(
        err.to_string(),
        format!(
            "transport error: could not connect to {port}: the connection was refused; the sms was not sent"
        )
    );
    // The underlying I/O error is reachable through source().
    assert!(err.source().unwrap().to_string().contains("refused"));
    assert_no_key(&err);
}
