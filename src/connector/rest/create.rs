//! The create that never duplicates: each attempt is classified by what
//! it tells about the record's existence, and an unknown outcome is
//! settled by looking the record up before anything is sent again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::client::{CallError, Failure};
use super::pages::Listing;
use super::records::{holds, id_text};
use super::spec::{EntityApi, Template, CONTACT_ID};
use super::RestConnector;
use crate::connector::{ConnectorError, Record};
use crate::domain::{EntityKind, MatchKey};

/// How far before a create's first attempt the change feed is searched
/// for the record it may have made (the app's clock may lag ours).
const CREATE_LOOKBACK: Duration = Duration::from_secs(600);

/// What a create attempt left behind.
enum Attempt {
    Created(Record),
    /// The app may or may not have made the record.
    Unknown(String),
    /// The app made nothing.
    Failed(ConnectorError),
}

impl RestConnector {
    /// The fields of a record to create, with its contact's id written at
    /// `parent_pointer` when the endpoint is flat (no `{contact_id}` in its
    /// path): the record then names its contact itself.
    pub(super) fn with_parent(
        &self,
        entity: EntityKind,
        api: &EntityApi,
        template: &Template,
        parent_id: Option<&str>,
        fields: &Map<String, Value>,
    ) -> Result<Map<String, Value>, ConnectorError> {
        let mut fields = fields.clone();
        if let (Some(parent), Some(pointer)) = (parent_id, &api.parent_pointer) {
            if !template.uses(CONTACT_ID) {
                // A flat endpoint: the record names its contact itself.
                let mut value = Value::Object(fields);
                pointer
                    .set(&mut value, Value::String(parent.to_owned()))
                    .map_err(|why| self.bad_record(entity, None, &template.text, why))?;
                fields = match value {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
            }
        }
        Ok(fields)
    }

    /// Creates a record and never a duplicate: an attempt whose outcome is
    /// unknown is followed by a lookup of the record it may have made, and
    /// sent again only when the lookup finds nothing.
    pub(super) async fn create_without_duplicate(
        &self,
        entity: EntityKind,
        api: &EntityApi,
        template: &Template,
        parent_id: Option<&str>,
        fields: &Map<String, Value>,
    ) -> Result<Record, ConnectorError> {
        let body = Self::wrap(api, Value::Object(fields.clone()));
        let started = Utc::now();
        let attempts = self.client.retry.max_attempts.max(1);
        let mut delays = backon::BackoffBuilder::build(self.client.retry.backoff());
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self
                .create_once(entity, api, template, parent_id, &body)
                .await
            {
                Attempt::Created(record) => return Ok(record),
                Attempt::Failed(error) => return Err(error),
                Attempt::Unknown(why) => {
                    tracing::warn!(side = %self.side, %entity, attempt, problem = %why, "create's outcome is unknown; looking the record up before any re-send");
                    last = why;
                }
            }
            match self.find_created(entity, api, parent_id, fields, started).await {
                Ok(Some(record)) => {
                    tracing::info!(side = %self.side, %entity, id = %record.id, "found the record an earlier attempt created");
                    return Ok(record);
                }
                Ok(None) => {}
                Err(None) => {
                    return Err(ConnectorError::Record {
                        side: self.side.clone(),
                        entity,
                        id: None,
                        message: format!(
                            "{last}; the outcome is unknown and nothing is configured to look the record up \
                             (lookup_email/lookup_phone with email_field/phone_field, `children` or `list`), \
                             so it was not sent again: check the app before retrying"
                        ),
                    })
                }
                Err(Some(error)) => {
                    return Err(ConnectorError::Unavailable {
                        side: self.side.clone(),
                        message: format!("{last}; then the lookup before a re-send failed: {error}"),
                        retry_after: None,
                    })
                }
            }
            if attempt < attempts {
                if let Some(delay) = delays.next() {
                    tokio::time::sleep(delay).await;
                }
            }
        }
        Err(ConnectorError::Unavailable {
            side: self.side.clone(),
            message: format!(
                "{last} (after {attempts} attempts, each followed by a lookup that found nothing)"
            ),
            retry_after: None,
        })
    }

    /// One POST (or PUT) of a create, classified by what it tells about
    /// the record's existence.
    async fn create_once(
        &self,
        entity: EntityKind,
        api: &EntityApi,
        template: &Template,
        parent_id: Option<&str>,
        body: &Value,
    ) -> Attempt {
        let vars = match self.vars(entity, template, None, parent_id) {
            Ok(vars) => vars,
            Err(error) => return Attempt::Failed(error),
        };
        let request = self.request(template, &vars, Some(body.clone()));
        match self.client.execute(&request).await {
            Ok(reply) => {
                let parsed = self
                    .answer_json(entity, None, &request.label, &reply)
                    .and_then(|json| {
                        self.single(entity, api, None, parent_id, &request.label, &json)
                    });
                match parsed {
                    Ok(Some(record)) => Attempt::Created(record),
                    Ok(None) => Attempt::Unknown(format!(
                        "{}: answered {} without the record",
                        request.label, reply.status
                    )),
                    Err(error) => Attempt::Unknown(error.to_string()),
                }
            }
            Err(error) if error.failure.status() == Some(409) => self.conflict(entity, api, error),
            Err(error) if error.failure.maybe_applied() => Attempt::Unknown(error.to_string()),
            Err(error) => Attempt::Failed(self.record_error(entity, None, error)),
        }
    }

    /// A 409 to a create: a record holding one of its keys exists already.
    /// Its id is read from `conflict_id_pointer` when configured; which
    /// record it is, and whether it is the one we meant, the engine
    /// decides (it verifies before it links or writes anything).
    fn conflict(&self, entity: EntityKind, api: &EntityApi, error: CallError) -> Attempt {
        let existing_id = match (&error.failure, &api.conflict_id_pointer) {
            (Failure::Status { body, .. }, Some(pointer)) => serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|json| pointer.get(&json).and_then(|v| id_text(v).ok())),
            _ => None,
        };
        Attempt::Failed(ConnectorError::Duplicate {
            side: self.side.clone(),
            entity,
            existing_id,
            message: error.to_string(),
        })
    }

    /// After an unknown outcome: the record the create made, if it made
    /// one. `Err` when there is no way to tell (so no re-send is safe).
    async fn find_created(
        &self,
        entity: EntityKind,
        api: &EntityApi,
        parent_id: Option<&str>,
        fields: &Map<String, Value>,
        started: DateTime<Utc>,
    ) -> Result<Option<Record>, Option<ConnectorError>> {
        if entity == EntityKind::Contact {
            let keyed = [
                (
                    MatchKey::Email,
                    api.lookup_email.is_some(),
                    api.email_field.as_deref(),
                ),
                (
                    MatchKey::Phone,
                    api.lookup_phone.is_some(),
                    api.phone_field.as_deref(),
                ),
            ];
            for (key, configured, field) in keyed {
                let value = field
                    .and_then(|f| fields.get(f))
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|v| !v.is_empty());
                if let (true, Some(value)) = (configured, value) {
                    let found = self.lookup(key, value).await.map_err(Some)?;
                    // Ours holds what was sent; without a field to check
                    // the key by, a lookup proves nothing.
                    return Ok(found
                        .into_iter()
                        .find(|record| field.is_some() && holds(&record.fields, fields)));
                }
            }
        }
        // No key to look up by: find a record holding what was sent among
        // the contact's records, or the ones changed since the attempt.
        let candidates = if let (Some(children), Some(parent)) = (&api.children, parent_id) {
            self.collect(Listing {
                entity,
                api,
                template: children,
                parent: Some(parent.to_owned()),
                since: None,
            })
            .await
        } else if let Some(list) = &api.list {
            let since = started - chrono::Duration::from_std(CREATE_LOOKBACK).expect("constant");
            self.collect(Listing {
                entity,
                api,
                template: list,
                parent: None,
                since: Some(since),
            })
            .await
        } else {
            return Err(None);
        };
        let candidates = candidates.map_err(Some)?;
        Ok(candidates
            .into_iter()
            .filter(|record| holds(&record.fields, fields))
            .max_by_key(|record| record.updated_at))
    }
}
