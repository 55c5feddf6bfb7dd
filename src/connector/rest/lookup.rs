//! Contacts by email or phone: the app's lookup endpoints, with every
//! answer checked, since an app that ignores the filter answers with
//! everyone.

use serde_json::Value;

use super::records::{digits, Reader};
use super::spec::VALUE;
use super::RestConnector;
use crate::connector::{ConnectorError, Record};
use crate::domain::{EntityKind, MatchKey};

impl RestConnector {
    /// The records a lookup answers with that hold `key` = `value` (all of
    /// them when no `email_field`/`phone_field` says where the key is: the
    /// engine then checks them through the field map).
    pub(super) async fn lookup(
        &self,
        key: MatchKey,
        value: &str,
    ) -> Result<Vec<Record>, ConnectorError> {
        let entity = EntityKind::Contact;
        let api = self.entity_api(entity, "look up")?;
        let (template, field) = match key {
            MatchKey::Email => (api.lookup_email.as_ref(), api.email_field.as_deref()),
            MatchKey::Phone => (api.lookup_phone.as_ref(), api.phone_field.as_deref()),
        };
        let key_name = match key {
            MatchKey::Email => "lookup_email",
            MatchKey::Phone => "lookup_phone",
        };
        let template = self.template(entity, template, "look up", key_name)?;
        let request = self.request(template, &[(VALUE, value)], None);
        let (_, body) = self
            .client
            .execute_json(&request)
            .await
            .map_err(|e| self.side_error(e))?;
        let page_error = |why: String| ConnectorError::Unavailable {
            side: self.side.clone(),
            message: format!("{}: {why}", request.label),
            retry_after: None,
        };
        let reader = Reader { entity, api };
        let items = reader.array(&body).map_err(page_error)?;
        let wanted = normalise(key, value);
        let mut found = Vec::new();
        for item in items {
            let record = match reader.record(item, None) {
                Ok(record) => record,
                Err(rejected) => {
                    tracing::warn!(side = %self.side, call = %request.label, problem = %rejected.message, "lookup skipped a bad record");
                    continue;
                }
            };
            // An app that ignores the filter returns everyone: check.
            let matches = match field {
                Some(field) => record
                    .fields
                    .get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|found| normalise(key, found) == wanted),
                None => true,
            };
            if matches {
                found.push(record);
            }
        }
        Ok(found)
    }
}

/// A match key's value as compared: emails without case, phones as digits.
fn normalise(key: MatchKey, value: &str) -> String {
    match key {
        MatchKey::Email => value.trim().to_lowercase(),
        MatchKey::Phone => digits(value),
    }
}
