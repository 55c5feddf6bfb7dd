//! GHL webhook signatures: deliveries from the GHL simulator verify with
//! its published keys; forged, tampered, missing and foreign ones do not.

#[path = "common/sim_helpers.rs"]
mod sim_helpers;

use std::time::Duration;

use base64::Engine as _;
use ghl_sync::connector::ghl::webhook::{
    GhlEvent, Verified, WebhookError, WebhookKeys, ED25519_HEADER, RSA_HEADER,
};
use ghlsync_sim::ghl::{GhlSim, SimOptions, WebhookPublicKeys};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;

/// One signed `ContactUpdate` delivery from the simulator, and its keys:
/// signed with both schemes as GHL did before 2026-07-01 (`legacy_rsa`),
/// or with Ed25519 only as it does now.
async fn delivery(legacy_rsa: bool) -> (HeaderMap, Vec<u8>, WebhookKeys, WebhookPublicKeys) {
    let (url, received, _task) = sim_helpers::receiver().await;
    let sim = GhlSim::start(SimOptions {
        contacts_per_location: 2,
        webhook_url: Some(url),
        legacy_rsa_signature: legacy_rsa,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let handle = sim.handle();
    let id = handle.contacts(&handle.location_ids()[0])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    handle
        .update_contact_as_user(&id, json!({"firstName": "Signed"}))
        .unwrap();
    assert!(handle.flush_webhooks(Duration::from_secs(5)).await);
    let (headers, body) = received.all().into_iter().next().expect("a delivery");
    let pems = handle.webhook_public_keys();
    let keys = WebhookKeys::from_pem(Some(&pems.rsa_pem), Some(&pems.ed25519_pem)).unwrap();
    sim.shutdown().await;
    (headers, body, keys, pems)
}

#[tokio::test]
async fn genuine_deliveries_verify_with_both_signatures() {
    // Today's delivery: Ed25519 only, the RSA header holding "N/A".
    let (headers, body, keys, _) = delivery(false).await;
    assert_eq!(headers[RSA_HEADER], "N/A");
    assert_eq!(keys.verify(&headers, &body), Ok(Verified::Ed25519));

    let (headers, body, keys, pems) = delivery(true).await;
    assert_eq!(keys.verify(&headers, &body), Ok(Verified::Both));
    let event = GhlEvent::parse(&body).unwrap();
    assert_eq!(event.kind, "ContactUpdate");
    assert!(event.id.is_some() && event.webhook_id.is_some() && event.timestamp.is_some());

    // Each signature alone suffices when only its key is configured.
    let rsa_only = WebhookKeys::from_pem(Some(&pems.rsa_pem), None).unwrap();
    assert_eq!(rsa_only.verify(&headers, &body), Ok(Verified::RsaSha256));
    let ed25519_only = WebhookKeys::from_pem(None, Some(&pems.ed25519_pem)).unwrap();
    assert_eq!(ed25519_only.verify(&headers, &body), Ok(Verified::Ed25519));
    let no_keys = WebhookKeys::from_pem(None, None).unwrap();
    assert_eq!(
        no_keys.verify(&headers, &body),
        Err(WebhookError::MissingSignature)
    );
}

#[tokio::test]
async fn tampered_forged_and_missing_signatures_are_refused() {
    let (headers, body, keys, _) = delivery(true).await;
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert!(matches!(
        keys.verify(&headers, &tampered),
        Err(WebhookError::BadSignature { .. })
    ));

    // A forged Ed25519 header beside a genuine RSA one is still refused.
    let mut forged = headers.clone();
    let fake = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
    forged.insert(ED25519_HEADER, HeaderValue::from_str(&fake).unwrap());
    assert_eq!(
        keys.verify(&forged, &body),
        Err(WebhookError::BadSignature {
            header: ED25519_HEADER
        })
    );

    let mut garbage = headers.clone();
    garbage.insert(RSA_HEADER, HeaderValue::from_static("not base64!"));
    assert_eq!(
        keys.verify(&garbage, &body),
        Err(WebhookError::NotBase64 { header: RSA_HEADER })
    );

    let mut missing = headers.clone();
    missing.remove(RSA_HEADER);
    missing.remove(ED25519_HEADER);
    assert_eq!(
        keys.verify(&missing, &body),
        Err(WebhookError::MissingSignature)
    );

    // GHL's real key does not vouch for the simulator's signatures.
    let mut rsa_only = headers.clone();
    rsa_only.remove(ED25519_HEADER);
    assert_eq!(
        WebhookKeys::ghl_default().verify(&rsa_only, &body),
        Err(WebhookError::BadSignature { header: RSA_HEADER })
    );
}

#[test]
fn keys_that_do_not_parse_are_named() {
    let error = WebhookKeys::from_pem(
        Some("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
        None,
    )
    .unwrap_err();
    assert_eq!(error.which, "RSA");
    assert!(GhlEvent::parse(b"<html>").is_err());
}

/// GHL's published Ed25519 key (FIELD-NOTES.md, "Webhook signatures"),
/// pinned: a change to the shipped default must be deliberate.
#[test]
fn the_published_ed25519_key_is_shipped_as_it_was_published() {
    assert_eq!(
        ghl_sync::connector::ghl::webhook::GHL_WEBHOOK_ED25519_PUBLIC_KEY,
        "-----BEGIN PUBLIC KEY-----\n\
         MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=\n\
         -----END PUBLIC KEY-----\n"
    );
}

/// An Ed25519-only delivery (every delivery since 2026-07-01) signed by
/// `key`, with the legacy header holding "N/A" as GHL sends it.
fn ed25519_only(key: &ed25519_dalek::SigningKey, body: &[u8]) -> HeaderMap {
    use ed25519_dalek::Signer as _;
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(body).to_bytes());
    let mut headers = HeaderMap::new();
    headers.insert(ED25519_HEADER, HeaderValue::from_str(&signature).unwrap());
    headers.insert(RSA_HEADER, HeaderValue::from_static("N/A"));
    headers
}

#[test]
fn the_default_keys_check_ed25519_and_na_counts_as_absent() {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let body = br#"{"type":"ContactUpdate","id":"c1"}"#;
    let headers = ed25519_only(&key, body);

    // With no configuration, the Ed25519 header is checked (against GHL's
    // key, which did not sign this): refused as a bad signature, not
    // waved through nor "missing"; and "N/A" is no malformed RSA header.
    assert_eq!(
        WebhookKeys::ghl_default().verify(&headers, body),
        Err(WebhookError::BadSignature {
            header: ED25519_HEADER
        })
    );

    // The override (as for a key rotation) verifies a delivery signed by it.
    let pem = key
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap();
    let rotated = WebhookKeys::from_pem(
        Some(ghl_sync::connector::ghl::webhook::GHL_WEBHOOK_PUBLIC_KEY),
        Some(&pem),
    )
    .unwrap();
    assert_eq!(rotated.verify(&headers, body), Ok(Verified::Ed25519));
    let mut tampered = body.to_vec();
    tampered[2] = b'X';
    assert!(rotated.verify(&headers, &tampered).is_err());
}
