//! Verification of the app's webhooks: an HMAC-SHA256 of the raw body in a
//! header (compared in constant time), an optional timestamp header within
//! a tolerance, and a body that names the entity and record. Webhooks are
//! triggers, not truth: the caller fetches the record they name.

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::Sha256;

use super::records::id_text;
use super::spec::{type_name, SignatureEncoding};
use super::RestConnector;
use crate::connector::{Secret, WebhookError, WebhookEvent};
use crate::domain::EntityKind;

impl RestConnector {
    /// Checks a webhook delivery and says which record it is about.
    ///
    /// The signature is checked first (over the raw bytes, before any
    /// parsing), then the timestamp, then the body.
    pub fn verify_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookError> {
        let Some(secret) = &self.webhook_secret else {
            return Err(WebhookError::NotConfigured {
                side: self.side.clone(),
            });
        };
        self.check_signature(secret, headers, body)?;
        if let Some(name) = &self.webhook.timestamp_header {
            self.check_timestamp(name, headers, now)?;
        }
        self.read_event(body)
    }

    /// The HMAC-SHA256 of the raw body, compared in constant time with the
    /// one in the signature header (after its prefix, in its encoding).
    fn check_signature(
        &self,
        secret: &Secret,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), WebhookError> {
        let side = || self.side.clone();
        let spec = &self.webhook;
        let header = spec.signature_header.clone();
        let signature = header_text(headers, &spec.signature_header).ok_or_else(|| {
            WebhookError::MissingSignature {
                side: side(),
                header: header.clone(),
            }
        })?;
        let bad = || WebhookError::BadSignature {
            side: side(),
            header: header.clone(),
        };
        let prefix = spec.signature_prefix.as_str();
        let encoded = if prefix.is_empty() {
            signature
        } else if signature.len() >= prefix.len()
            && signature[..prefix.len()].eq_ignore_ascii_case(prefix)
        {
            &signature[prefix.len()..]
        } else {
            return Err(bad());
        };
        let given = match spec.signature_encoding {
            SignatureEncoding::Hex => hex::decode(encoded.trim()),
            SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| hex::FromHexError::InvalidStringLength),
        }
        .map_err(|_| bad())?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.value.expose_secret().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(body);
        mac.verify_slice(&given).map_err(|_| bad())
    }

    /// The timestamp header `name`: present, readable, and within the
    /// tolerance of `now` (a replayed or delayed delivery is not).
    fn check_timestamp(
        &self,
        name: &str,
        headers: &HeaderMap,
        now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        let side = || self.side.clone();
        let tolerance = self.webhook.tolerance;
        let value = header_text(headers, name).ok_or_else(|| WebhookError::MissingTimestamp {
            side: side(),
            header: name.to_owned(),
        })?;
        let sent = parse_timestamp(value).ok_or_else(|| WebhookError::BadTimestamp {
            side: side(),
            header: name.to_owned(),
            value: value.chars().take(40).collect(),
        })?;
        let skew = (now - sent).num_seconds().abs();
        if skew as u64 > tolerance.as_secs() {
            return Err(WebhookError::StaleTimestamp {
                side: side(),
                sent,
                skew_seconds: skew,
                tolerance_seconds: tolerance.as_secs(),
            });
        }
        Ok(())
    }

    /// The entity, id and (for a task or note) contact the body names.
    fn read_event(&self, body: &[u8]) -> Result<WebhookEvent, WebhookError> {
        let spec = &self.webhook;
        let malformed = |reason: String| WebhookError::Malformed {
            side: self.side.clone(),
            reason,
        };
        let event: Value =
            serde_json::from_slice(body).map_err(|e| malformed(format!("not JSON ({e})")))?;
        let entity = match spec.entity_pointer.get(&event) {
            Some(Value::String(name)) => entity_named(name).ok_or_else(|| {
                malformed(format!(
                    "entity {name:?} at {} is not contact, task or note",
                    spec.entity_pointer
                ))
            })?,
            Some(other) => {
                return Err(malformed(format!(
                    "entity at {} is {}, expected a string",
                    spec.entity_pointer,
                    type_name(other)
                )))
            }
            None => return Err(malformed(format!("no entity at {}", spec.entity_pointer))),
        };
        if !self.entities.contains_key(&entity) {
            return Err(malformed(format!(
                "the event is about a {entity}, which this side does not describe"
            )));
        }
        let id = match spec.id_pointer.get(&event) {
            None | Some(Value::Null) => {
                return Err(malformed(format!("no id at {}", spec.id_pointer)))
            }
            Some(raw) => {
                id_text(raw).map_err(|why| malformed(format!("id at {} {why}", spec.id_pointer)))?
            }
        };
        let parent_id = match &spec.parent_pointer {
            Some(pointer) if entity != EntityKind::Contact => match pointer.get(&event) {
                None | Some(Value::Null) => None,
                Some(raw) => Some(
                    id_text(raw)
                        .map_err(|why| malformed(format!("contact id at {pointer} {why}")))?,
                ),
            },
            _ => None,
        };
        Ok(WebhookEvent {
            entity,
            id,
            parent_id,
        })
    }
}

/// A header's value, trimmed; `None` when absent, not text, or blank.
fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn entity_named(name: &str) -> Option<EntityKind> {
    match name.trim().to_ascii_lowercase().as_str() {
        "contact" | "contacts" => Some(EntityKind::Contact),
        "task" | "tasks" => Some(EntityKind::Task),
        "note" | "notes" => Some(EntityKind::Note),
        _ => None,
    }
}

/// Epoch seconds (or milliseconds, when the number is that large), or RFC
/// 3339.
fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(number) = text.parse::<i64>() {
        return if number.abs() >= 100_000_000_000 {
            Utc.timestamp_millis_opt(number).single()
        } else {
            Utc.timestamp_opt(number, 0).single()
        };
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
