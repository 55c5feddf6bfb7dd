//! Verifying GHL's signed webhooks (`docs/oauth/WebhookAuthentication.md`).
//!
//! Since 2026-07-01 GHL signs the raw body with Ed25519 only, in
//! `x-ghl-signature` (field notes, "Webhook signatures"); older deliveries
//! carry RSA-SHA256 (PKCS#1 v1.5) in `x-wh-signature`. Both of GHL's
//! published keys are the default, so a genuine delivery of today verifies
//! with no configuration. A header holding the literal `N/A` means "not
//! signed with this scheme" and counts as absent. Every signature present
//! for which a key is configured must verify, and at least one must: a
//! forged header never rides along with a genuine one.

use crate::domain::EntityKind;
use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use reqwest::header::HeaderMap;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use rsa::RsaPublicKey;
use serde::Deserialize;
use sha2::Sha256;

/// GHL's published webhook public key (RSA 4096), as printed in
/// `docs/oauth/WebhookAuthentication.md`. Configurable for rotation.
pub const GHL_WEBHOOK_PUBLIC_KEY: &str = concat!(
    "-----BEGIN PUBLIC KEY-----\n",
    "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC\n",
    "Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6\n",
    "dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB\n",
    "csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv\n",
    "uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF\n",
    "3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU\n",
    "J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp\n",
    "IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN\n",
    "h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC\n",
    "HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ\n",
    "PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk\n",
    "T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==\n",
    "-----END PUBLIC KEY-----\n",
);

/// GHL's published Ed25519 webhook verification key (SPKI PEM), the one
/// every delivery since 2026-07-01 is signed with: a public key, embedded
/// by GHL's own SDK (field notes, "Webhook signatures"). Configurable for
/// rotation (`webhooks.ghl_ed25519_public_key`).
pub const GHL_WEBHOOK_ED25519_PUBLIC_KEY: &str = concat!(
    "-----BEGIN PUBLIC KEY-----\n",
    "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=\n",
    "-----END PUBLIC KEY-----\n",
);

pub const RSA_HEADER: &str = "x-wh-signature";
pub const ED25519_HEADER: &str = "x-ghl-signature";

/// The keys webhooks are verified with.
#[derive(Debug, Clone)]
pub struct WebhookKeys {
    rsa: Option<VerifyingKey<Sha256>>,
    ed25519: Option<ed25519_dalek::VerifyingKey>,
}

/// Which signature vouched for a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    RsaSha256,
    Ed25519,
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook carries no signature we can check ({RSA_HEADER} or {ED25519_HEADER})")]
    MissingSignature,
    #[error("the {header} signature does not match the body")]
    BadSignature { header: &'static str },
    #[error("the {header} header is not base64")]
    NotBase64 { header: &'static str },
    #[error("the webhook body is not a GHL event: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {which} webhook public key: {detail}")]
pub struct KeyError {
    pub which: &'static str,
    pub detail: String,
}

impl WebhookKeys {
    /// GHL's published keys: Ed25519 (today's deliveries) and RSA (legacy).
    pub fn ghl_default() -> Self {
        Self::from_pem(
            Some(GHL_WEBHOOK_PUBLIC_KEY),
            Some(GHL_WEBHOOK_ED25519_PUBLIC_KEY),
        )
        .expect("the published keys parse")
    }

    /// Keys from SPKI PEM text (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(rsa_pem: Option<&str>, ed25519_pem: Option<&str>) -> Result<Self, KeyError> {
        let rsa = rsa_pem
            .map(|pem| {
                RsaPublicKey::from_public_key_pem(pem.trim())
                    .map(VerifyingKey::<Sha256>::new)
                    .map_err(|e| KeyError {
                        which: "RSA",
                        detail: e.to_string(),
                    })
            })
            .transpose()?;
        let ed25519 = ed25519_pem
            .map(|pem| {
                ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| KeyError {
                    which: "Ed25519",
                    detail: e.to_string(),
                })
            })
            .transpose()?;
        Ok(Self { rsa, ed25519 })
    }

    /// Checks the signatures of a delivery over its raw body.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, WebhookError> {
        let rsa = match (&self.rsa, signature(headers, RSA_HEADER)?) {
            (Some(key), Some(bytes)) => {
                let signature = Signature::try_from(bytes.as_slice())
                    .map_err(|_| WebhookError::BadSignature { header: RSA_HEADER })?;
                key.verify(body, &signature)
                    .map_err(|_| WebhookError::BadSignature { header: RSA_HEADER })?;
                true
            }
            _ => false,
        };
        let ed25519 = match (&self.ed25519, signature(headers, ED25519_HEADER)?) {
            (Some(key), Some(bytes)) => {
                let signature = ed25519_dalek::Signature::from_slice(&bytes).map_err(|_| {
                    WebhookError::BadSignature {
                        header: ED25519_HEADER,
                    }
                })?;
                key.verify(body, &signature)
                    .map_err(|_| WebhookError::BadSignature {
                        header: ED25519_HEADER,
                    })?;
                true
            }
            _ => false,
        };
        match (rsa, ed25519) {
            (true, true) => Ok(Verified::Both),
            (true, false) => Ok(Verified::RsaSha256),
            (false, true) => Ok(Verified::Ed25519),
            (false, false) => Err(WebhookError::MissingSignature),
        }
    }
}

fn signature(headers: &HeaderMap, header: &'static str) -> Result<Option<Vec<u8>>, WebhookError> {
    let Some(value) = headers.get(header) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| WebhookError::NotBase64 { header })?;
    if text.trim().eq_ignore_ascii_case("N/A") {
        // "Not signed with this scheme" (field notes): absent, not forged.
        return Ok(None);
    }
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map(Some)
        .map_err(|_| WebhookError::NotBase64 { header })
}

/// What the engine needs from an event: which record to fetch. Webhooks are
/// triggers, not truth; the payload beyond this is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GhlEvent {
    /// `ContactUpdate`, `TaskComplete`, `NoteCreate`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub location_id: Option<String>,
    /// The record the event is about (contact, task, note or appointment).
    pub id: Option<String>,
    /// The owning contact, for tasks, notes and appointments.
    pub contact_id: Option<String>,
    pub webhook_id: Option<String>,
    pub timestamp: Option<chrono::DateTime<chrono::Utc>>,
    /// Appointment events carry their record here instead of at the top.
    pub appointment: Option<AppointmentRef>,
}

/// The part of an appointment event that names the record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentRef {
    pub id: Option<String>,
    pub contact_id: Option<String>,
}

/// What an event asks of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAction {
    /// Fetch this record and sync it (it may be gone: a delete event).
    Sync {
        entity: crate::domain::EntityKind,
        id: String,
        parent_id: Option<String>,
    },
    /// The app was installed on or removed from a location.
    Install,
    Uninstall,
    /// An event type the sync does not use, or one without a record id.
    Ignore,
}

/// The event types the sync understands (see [`GhlEvent::action`]).
const KNOWN_TYPES: [&str; 16] = [
    "ContactCreate",
    "ContactUpdate",
    "ContactDelete",
    "ContactTagUpdate",
    "ContactDndUpdate",
    "TaskCreate",
    "TaskComplete",
    "TaskDelete",
    "NoteCreate",
    "NoteUpdate",
    "NoteDelete",
    "AppointmentCreate",
    "AppointmentUpdate",
    "AppointmentDelete",
    "INSTALL",
    "UNINSTALL",
];

impl GhlEvent {
    /// The event's type as a metric label: one the sync knows, else
    /// `other`. The type is the sender's text, and a label value per
    /// text it sends would grow without bound.
    pub fn type_label(&self) -> &'static str {
        KNOWN_TYPES
            .iter()
            .find(|known| **known == self.kind)
            .copied()
            .unwrap_or("other")
    }

    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))
    }

    /// Which record the event is about, by its type
    /// (`docs/webhooks/*.md`).
    pub fn action(&self) -> EventAction {
        let (entity, id, parent_id) = match self.kind.as_str() {
            "ContactCreate" | "ContactUpdate" | "ContactDelete" | "ContactTagUpdate"
            | "ContactDndUpdate" => (EntityKind::Contact, self.id.clone(), None),
            "TaskCreate" | "TaskComplete" | "TaskDelete" => {
                (EntityKind::Task, self.id.clone(), self.contact_id.clone())
            }
            "NoteCreate" | "NoteUpdate" | "NoteDelete" => {
                (EntityKind::Note, self.id.clone(), self.contact_id.clone())
            }
            "AppointmentCreate" | "AppointmentUpdate" | "AppointmentDelete" => {
                let appointment = self.appointment.as_ref();
                (
                    EntityKind::Appointment,
                    appointment.and_then(|a| a.id.clone()),
                    appointment.and_then(|a| a.contact_id.clone()),
                )
            }
            "INSTALL" => return EventAction::Install,
            "UNINSTALL" => return EventAction::Uninstall,
            _ => return EventAction::Ignore,
        };
        match id.filter(|id| !id.is_empty()) {
            Some(id) => EventAction::Sync {
                entity,
                id,
                parent_id,
            },
            None => EventAction::Ignore,
        }
    }
}
