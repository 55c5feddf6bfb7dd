//! GHL webhook signatures: deliveries from the GHL simulator verify with
//! its published keys; forged, tampered, missing and foreign ones do not.

#[path = "common/sim_helpers.rs"]
mod sim_helpers;

use std::time::Duration;

use base64::Engine as _;
use ghl_sync::connector::ghl::webhook::{
    GhlEvent, Verified, WebhookError, WebhookKeys, ED25519_HEADER, RSA_HEADER,
};
use ghl_sync::sim::ghl::{GhlSim, SimOptions, WebhookPublicKeys};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::json;

/// One signed `ContactUpdate` delivery from the simulator, and its keys.
async fn delivery() -> (HeaderMap, Vec<u8>, WebhookKeys, WebhookPublicKeys) {
    let (url, received, _task) = sim_helpers::receiver().await;
    let sim = GhlSim::start(SimOptions {
        contacts_per_location: 2,
        webhook_url: Some(url),
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
    let (headers, body, keys, pems) = delivery().await;
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
    let (headers, body, keys, _) = delivery().await;
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
