//! Hostile SAML responses: each is built from a response the server would accept, changed in
//! one way, and must end on Directus's failure redirect, `?reason=UNKNOWN_EXCEPTION`, with no
//! session. The same good response is accepted at the end, so each refusal is the check's.

use chrono::{Duration, Utc};

use super::idp::{self, b64, sign, Spec};
use super::{assert_reason, post_acs, spawn_saml, start, OPEN};

const RELAY: &str = "/admin";

/// Cuts the first `<tag ...>...</tag>` element (by local name with the `saml:`/`ds:` prefix
/// used by the builder) out of `xml`: (the element, xml without it).
fn cut(xml: &str, open: &str, close: &str) -> (String, String) {
    let a = xml.find(open).unwrap_or_else(|| panic!("{open} in {xml}"));
    let b = xml[a..].find(close).unwrap() + a + close.len();
    (xml[a..b].to_string(), format!("{}{}", &xml[..a], &xml[b..]))
}

/// Builds an attack from a fresh good spec for `request_id`.
type Attack = fn(&str) -> String;

fn unsigned(rid: &str) -> String {
    let mut s = Spec::good(rid, "mal");
    s.sign_response = false;
    s.sign_assertion = false;
    s.encoded()
}

fn wrong_key(rid: &str) -> String {
    let mut s = Spec::good(rid, "mal");
    s.key = "attacker";
    s.encoded()
}

fn tampered_attribute(rid: &str) -> String {
    let xml = Spec::good(rid, "mal").signed_xml();
    let evil = xml.replace(
        "mal@example.com</saml:AttributeValue>",
        "admin@example.com</saml:AttributeValue>",
    );
    assert_ne!(evil, xml);
    b64(&evil)
}

/// Only the assertion signed (as many IdPs do): the classic wrapping attacks target this.
fn assertion_only(rid: &str) -> Spec {
    let mut s = Spec::good(rid, "mal");
    s.sign_response = false;
    s
}

/// XSW: the signed assertion moved into `<samlp:Extensions>`, an evil assertion with the same
/// ID in its place (the signature still verifies against the moved original).
fn wrapped_same_id(rid: &str) -> String {
    let s = assertion_only(rid);
    let signed = s.signed_xml();
    let (original, rest) = cut(&signed, "<saml:Assertion", "</saml:Assertion>");
    let mut evil = s.clone();
    evil.sign_assertion = false;
    let evil = evil.attribute(idp::ID_KEY, "admin").assertion_xml();
    let wrapped = rest.replacen(
        "<samlp:Status>",
        &format!("<samlp:Extensions>{original}</samlp:Extensions><samlp:Status>"),
        1,
    );
    let at = wrapped.find("</samlp:Response>").unwrap();
    b64(&format!("{}{evil}{}", &wrapped[..at], &wrapped[at..]))
}

/// XSW: an evil assertion with a new ID first, the signed original after it.
fn wrapped_new_id(rid: &str) -> String {
    let s = assertion_only(rid);
    let signed = s.signed_xml();
    let mut evil = s.clone();
    evil.sign_assertion = false;
    evil.assertion_id = "_evil".into();
    let evil = evil.attribute(idp::ID_KEY, "admin").assertion_xml();
    b64(&signed.replacen("<saml:Assertion", &format!("{evil}<saml:Assertion"), 1))
}

/// A second, unsigned assertion after the signed one, in a signed-response-free message.
fn second_unsigned_assertion(rid: &str) -> String {
    let s = assertion_only(rid);
    let signed = s.signed_xml();
    let mut extra = s.clone();
    extra.sign_assertion = false;
    extra.assertion_id = "_extra".into();
    let extra = extra.attribute(idp::ID_KEY, "admin").assertion_xml();
    b64(&signed.replacen("</samlp:Response>", &format!("{extra}</samlp:Response>"), 1))
}

/// The same, with the response signed around both: the extra assertion is then inside the
/// signed content, but a response carries one assertion.
fn second_signed_in_response(rid: &str) -> String {
    let s = Spec::good(rid, "mal");
    let mut extra = s.clone();
    extra.sign_assertion = false;
    extra.assertion_id = "_extra".into();
    let both = format!(
        "{}{}",
        s.assertion_xml(),
        extra.attribute(idp::ID_KEY, "admin").assertion_xml()
    );
    let xml = sign(
        &sign(&s.template(&both), "idp", "Assertion"),
        "idp",
        "Response",
    );
    b64(&xml)
}

/// The assertion's signature moved up to the Response (still naming the assertion), and the
/// assertion changed: the reference no longer matches what it names.
fn signature_moved(rid: &str) -> String {
    let s = assertion_only(rid);
    let signed = s.signed_xml();
    let (assertion, rest) = cut(&signed, "<saml:Assertion", "</saml:Assertion>");
    let (signature, _) = cut(&assertion, "<ds:Signature", "</ds:Signature>");
    let mut evil = s.clone();
    evil.sign_assertion = false;
    let evil = evil.attribute(idp::ID_KEY, "admin").assertion_xml();
    let moved = rest.replacen("<samlp:Status>", &format!("{signature}<samlp:Status>"), 1);
    let at = moved.find("</samlp:Response>").unwrap();
    b64(&format!("{}{evil}{}", &moved[..at], &moved[at..]))
}

/// The signed original hidden inside an evil assertion's own (unverifiable) signature object.
fn signature_wrapping_object(rid: &str) -> String {
    let s = assertion_only(rid);
    let signed = s.signed_xml();
    let (original, rest) = cut(&signed, "<saml:Assertion", "</saml:Assertion>");
    let mut evil = s.clone();
    evil.sign_assertion = false;
    let evil = evil.attribute(idp::ID_KEY, "admin").assertion_xml();
    let evil = evil.replacen(
        "<saml:Subject>",
        &format!("<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:Object>{original}</ds:Object></ds:Signature><saml:Subject>"),
        1,
    );
    let at = rest.find("</samlp:Response>").unwrap();
    b64(&format!("{}{evil}{}", &rest[..at], &rest[at..]))
}

fn wrong_audience(rid: &str) -> String {
    let mut s = Spec::good(rid, "mal");
    s.audience = "http://other-sp.example".into();
    s.encoded()
}

fn wrong_destination(rid: &str) -> String {
    let mut s = Spec::good(rid, "mal");
    s.destination = "http://other-sp.example/acs".into();
    s.encoded()
}

/// Destination is outside the assertion: with only the assertion signed it must still match.
fn wrong_destination_unsigned_response(rid: &str) -> String {
    let mut s = assertion_only(rid);
    s.destination = "http://other-sp.example/acs".into();
    s.encoded()
}

fn wrong_recipient(rid: &str) -> String {
    let mut s = Spec::good(rid, "mal");
    s.recipient = "http://other-sp.example/acs".into();
    s.encoded()
}

fn wrong_issuer(rid: &str) -> String {
    let mut s = Spec::good(rid, "mal");
    s.issuer = "http://other-idp.example".into();
    s.encoded()
}

fn expired(rid: &str) -> String {
    let mut s = Spec::good(rid, "mal");
    let then = Utc::now() - Duration::hours(2);
    s.issue_instant = then;
    s.not_before = then;
    s.not_on_or_after = then + Duration::minutes(5);
    s.encoded()
}

fn not_yet_valid(rid: &str) -> String {
    let mut s = Spec::good(rid, "mal");
    s.not_before = Utc::now() + Duration::hours(1);
    s.encoded()
}

fn unknown_in_response_to(_rid: &str) -> String {
    Spec::good("_unknown", "mal").encoded()
}

fn no_in_response_to(rid: &str) -> String {
    let mut s = Spec::good(rid, "mal");
    s.in_response_to = None;
    s.encoded()
}

fn failed_status(rid: &str) -> String {
    let mut s = Spec::good(rid, "mal");
    s.status = "urn:oasis:names:tc:SAML:2.0:status:Requester".into();
    s.encoded()
}

/// A signature algorithm outside the allow list (Debian's xmlsec1 no longer signs with SHA-1,
/// so RSA-SHA224 stands in for "not one of the SHA-256/384/512 family").
fn algorithm_not_allowed(rid: &str) -> String {
    let s = Spec::good(rid, "mal");
    let weak = s
        .template(&s.assertion_xml())
        .replace("xmldsig-more#rsa-sha256", "xmldsig-more#rsa-sha224")
        .replace("xmlenc#sha256", "xmldsig-more#sha224");
    b64(&sign(&sign(&weak, "idp", "Assertion"), "idp", "Response"))
}

fn doctype(rid: &str) -> String {
    let xml = Spec::good(rid, "mal").signed_xml();
    let xml = xml.replacen(
        "<samlp:Response",
        "<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><samlp:Response",
        1,
    );
    b64(&xml)
}

fn nul_byte(rid: &str) -> String {
    let xml = Spec::good(rid, "mal").signed_xml();
    b64(&xml.replacen("mal@example.com<", "mal@example.com\0<", 1))
}

fn not_base64(_rid: &str) -> String {
    "%%% not base64 %%%".into()
}

fn not_xml(_rid: &str) -> String {
    b64("<samlp:Response")
}

fn too_large(rid: &str) -> String {
    let padding = "x".repeat(192 * 1024);
    let encoded = Spec::good(rid, "mal")
        .attribute("padding", &padding)
        .encoded();
    // Over the SAMLResponse bound, under the ACS body limit: the bound is what refuses it.
    assert!(
        encoded.len() > 256 * 1024 && encoded.len() < 270 * 1024,
        "{}",
        encoded.len()
    );
    encoded
}

fn a_logout_request(_rid: &str) -> String {
    b64(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_l" Version="2.0"/>"#,
    )
}

const ATTACKS: &[(&str, Attack)] = &[
    ("unsigned", unsigned),
    ("signed with another key", wrong_key),
    ("tampered attribute", tampered_attribute),
    ("XSW: wrapped assertion, same ID", wrapped_same_id),
    ("XSW: evil assertion before the signed one", wrapped_new_id),
    ("XSW: second unsigned assertion", second_unsigned_assertion),
    (
        "two assertions in a signed response",
        second_signed_in_response,
    ),
    ("XSW: signature moved", signature_moved),
    (
        "XSW: original inside the signature object",
        signature_wrapping_object,
    ),
    ("wrong audience", wrong_audience),
    ("wrong destination", wrong_destination),
    (
        "wrong destination, response unsigned",
        wrong_destination_unsigned_response,
    ),
    ("wrong recipient", wrong_recipient),
    ("wrong issuer", wrong_issuer),
    ("expired", expired),
    ("not yet valid", not_yet_valid),
    ("unknown InResponseTo", unknown_in_response_to),
    ("no InResponseTo", no_in_response_to),
    ("IdP status not success", failed_status),
    (
        "signature algorithm outside the allow list",
        algorithm_not_allowed,
    ),
    ("DTD with entities", doctype),
    ("NUL byte", nul_byte),
    ("not base64", not_base64),
    ("not XML", not_xml),
    ("too large", too_large),
    ("not a Response", a_logout_request),
];

#[tokio::test]
async fn saml_hostile_responses_are_refused_with_directus_s_reason() {
    let app = spawn_saml(OPEN).await;
    for (name, attack) in ATTACKS {
        let s = start(&app, "?redirect=/admin").await;
        let r = post_acs(&app, Some(&s.cookie), &attack(&s.request_id), Some(RELAY)).await;
        assert_eq!(r.status, 302, "{name}: {}", r.text);
        assert_eq!(
            r.headers["location"], "/admin?reason=UNKNOWN_EXCEPTION",
            "{name}"
        );
        assert!(r.set_cookie("directus_session_token").is_none(), "{name}");
    }
    // Nobody was created by any of them; the good response goes through.
    assert!(super::user_row(&app, "mal").await.is_none());
    assert!(super::user_row(&app, "admin").await.is_none());
    let s = start(&app, "?redirect=/admin").await;
    let good = Spec::good(&s.request_id, "mal").encoded();
    let r = post_acs(&app, Some(&s.cookie), &good, Some(RELAY)).await;
    assert_eq!(r.headers["location"], "/admin", "{}", r.text);
    assert!(super::user_row(&app, "mal").await.is_some());
}

#[tokio::test]
async fn saml_unsolicited_and_cross_browser_responses_are_refused() {
    let app = spawn_saml(OPEN).await;
    // IdP-initiated (no login started here): no cookie, no InResponseTo.
    let mut s = Spec::good("_x", "una");
    s.in_response_to = None;
    assert_reason(
        &post_acs(&app, None, &s.encoded(), Some(RELAY)).await,
        RELAY,
        "UNKNOWN_EXCEPTION",
    );
    // A response to a request another browser started.
    let mine = start(&app, "?redirect=/admin").await;
    let theirs = start(&app, "?redirect=/admin").await;
    let r = post_acs(
        &app,
        Some(&mine.cookie),
        &Spec::good(&theirs.request_id, "una").encoded(),
        Some(RELAY),
    )
    .await;
    assert_reason(&r, RELAY, "UNKNOWN_EXCEPTION");
    // A forged or expired request cookie counts as none.
    let forged = format!("{}x", mine.cookie);
    let r = post_acs(
        &app,
        Some(&forged),
        &Spec::good(&mine.request_id, "una").encoded(),
        Some(RELAY),
    )
    .await;
    assert_reason(&r, RELAY, "UNKNOWN_EXCEPTION");
    app.advance(std::time::Duration::from_secs(301));
    let r = post_acs(
        &app,
        Some(&mine.cookie),
        &Spec::good(&mine.request_id, "una").encoded(),
        Some(RELAY),
    )
    .await;
    assert_reason(&r, RELAY, "UNKNOWN_EXCEPTION");
    // Without a RelayState the refusal is JSON.
    let r = post_acs(&app, None, &s.encoded(), None).await;
    r.assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn saml_acs_bodies_are_bounded_and_odd_forms_refused() {
    let app = spawn_saml(OPEN).await;
    // Over the ACS body limit: refused before any parsing.
    let huge = "A".repeat(2 * 1024 * 1024);
    let r = post_acs(&app, None, &huge, Some(RELAY)).await;
    assert!(
        r.status == 413 || r.status == 400,
        "{} {}",
        r.status,
        r.text
    );
    // A repeated RelayState is not a string (Express would make it an array).
    let r = crate::helpers::read(
        app.client
            .post(app.url("/auth/login/corp/acs"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("SAMLResponse=x&RelayState=/a&RelayState=/b")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    // A JSON body is not read (express.urlencoded only), so there is no SAMLResponse.
    let r = crate::helpers::read(
        app.client
            .post(app.url("/auth/login/corp/acs"))
            .json(&serde_json::json!({"SAMLResponse": "x", "RelayState": "/admin"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(401, "INVALID_CREDENTIALS");
}
