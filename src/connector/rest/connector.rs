//! The REST app behind the [`Connector`] trait.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde_json::{Map, Value};
use tracing::Instrument;

use super::client::Reply;
use super::pages::Listing;
use super::records::{parse_json, Reader};
use super::spec::{EntityApi, Template, CONTACT_ID, ID};
use super::{usable_id, RestConnector};
use crate::connector::{
    Capabilities, Connector, ConnectorError, Deletion, Page, Patch, Record, WebhookError,
    WebhookEvent,
};
use crate::domain::{EntityKind, MatchKey};

impl RestConnector {
    pub(super) fn entity_api(
        &self,
        entity: EntityKind,
        operation: &'static str,
    ) -> Result<&EntityApi, ConnectorError> {
        self.api(entity).ok_or_else(|| {
            self.unsupported(
                entity,
                operation,
                format!(
                    "the side describes no [sides.{}.{}s] table",
                    self.side, entity
                ),
            )
        })
    }

    pub(super) fn template<'a>(
        &self,
        entity: EntityKind,
        template: Option<&'a Template>,
        operation: &'static str,
        key: &str,
    ) -> Result<&'a Template, ConnectorError> {
        template.ok_or_else(|| {
            self.unsupported(
                entity,
                operation,
                format!("`{key}` is not configured for {entity}s"),
            )
        })
    }

    fn writable(
        &self,
        entity: EntityKind,
        operation: &'static str,
        allowed: bool,
    ) -> Result<(), ConnectorError> {
        if allowed {
            return Ok(());
        }
        Err(self.unsupported(
            entity,
            operation,
            if self.capabilities.entities.contains_key(&entity) {
                "the side is read_only or has no such endpoint"
            } else {
                "the side does not describe this entity"
            },
        ))
    }

    /// Path variables for a record: its id and, when given, its contact's.
    pub(super) fn vars<'a>(
        &self,
        entity: EntityKind,
        template: &Template,
        id: Option<&'a str>,
        parent_id: Option<&'a str>,
    ) -> Result<Vec<(&'static str, &'a str)>, ConnectorError> {
        let mut vars = Vec::new();
        if let Some(id) = id {
            if !usable_id(id) {
                return Err(self.bad_record(
                    entity,
                    Some(id),
                    &template.text,
                    "is not an id that can be put in a URL",
                ));
            }
            vars.push((ID, id));
        }
        match parent_id {
            Some(parent) if usable_id(parent) => vars.push((CONTACT_ID, parent)),
            _ if template.uses(CONTACT_ID) => {
                return Err(self.bad_record(
                    entity,
                    id,
                    &template.text,
                    "needs the id of the record's contact, and none was given",
                ))
            }
            _ => {}
        }
        Ok(vars)
    }

    /// The JSON of a 2xx answer, or a record error naming the call.
    pub(super) fn answer_json(
        &self,
        entity: EntityKind,
        id: Option<&str>,
        label: &str,
        reply: &Reply,
    ) -> Result<Value, ConnectorError> {
        parse_json(&reply.body).map_err(|why| self.bad_record(entity, id, label, why))
    }

    /// The record in a single-record answer; `None` when it holds `null`.
    pub(super) fn single(
        &self,
        entity: EntityKind,
        api: &EntityApi,
        id: Option<&str>,
        parent_id: Option<&str>,
        label: &str,
        body: &Value,
    ) -> Result<Option<Record>, ConnectorError> {
        let reader = Reader { entity, api };
        let Some(value) = reader
            .single(body)
            .map_err(|why| self.bad_record(entity, id, label, why))?
        else {
            return Ok(None);
        };
        reader
            .record(value, parent_id)
            .map(Some)
            .map_err(|rejected| {
                self.bad_record(
                    entity,
                    rejected.id.as_deref().or(id),
                    label,
                    format!("the record {}", rejected.message),
                )
            })
    }

    /// Every record of a listing (all pages); refused ones are kept for
    /// [`RestConnector::take_rejected`].
    pub(super) async fn collect(
        &self,
        listing: Listing<'_>,
    ) -> Result<Vec<Record>, ConnectorError> {
        let batches: Vec<_> = self.pages(listing).try_collect().await?;
        let mut records = Vec::new();
        let mut rejected = Vec::new();
        for batch in batches {
            records.extend(batch.records);
            rejected.extend(batch.rejected);
        }
        self.keep_rejected(rejected);
        Ok(records)
    }
}

/// Whether a 2xx answer is an HTML page (a proxy's, not the app's).
fn is_html(reply: &Reply) -> bool {
    reply
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"))
}

#[async_trait]
impl Connector for RestConnector {
    fn side(&self) -> &str {
        &self.side
    }

    fn verify_webhook(
        &self,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Option<Result<WebhookEvent, WebhookError>> {
        Some(RestConnector::verify_webhook(self, headers, body, now))
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn changes(
        &self,
        entity: EntityKind,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxStream<'_, Result<Page, ConnectorError>> {
        let listing = self.entity_api(entity, "list changes of").and_then(|api| {
            let list = self.template(entity, api.list.as_ref(), "list changes of", "list")?;
            Ok(Listing {
                entity,
                api,
                template: list,
                parent: None,
                since: Some(since),
            })
        });
        let listing = match listing {
            Ok(listing) => listing,
            Err(error) => return stream::once(async move { Err(error) }).boxed(),
        };
        // Once a page holds only records past `until`, the rest of an
        // ordered feed is later still.
        self.pages(listing)
            .scan(false, move |past_until, batch| {
                let item = if *past_until {
                    None
                } else {
                    Some(batch.map(|batch| {
                        let beyond = !batch.records.is_empty() && batch.records.iter().all(|r| r.updated_at > until);
                        *past_until = beyond;
                        let mut records: Vec<Record> = batch
                            .records
                            .into_iter()
                            .filter(|r| r.updated_at >= since && r.updated_at <= until)
                            .collect();
                        records.sort_by_key(|r| r.updated_at);
                        let page = Page::with_rejected(records, batch.rejected);
                        for rejected in &page.rejected {
                            tracing::warn!(side = %self.side, error = %rejected, "record refused");
                        }
                        page
                    }))
                };
                async move { item }
            })
            .filter(|page| {
                let keep = !matches!(page, Ok(page) if page.records.is_empty() && page.rejected.is_empty());
                async move { keep }
            })
            .boxed()
    }

    fn all_contacts(&self) -> BoxStream<'_, Result<Vec<Record>, ConnectorError>> {
        let entity = EntityKind::Contact;
        let listing = self.entity_api(entity, "list").and_then(|api| {
            let list = self.template(entity, api.list.as_ref(), "list", "list")?;
            Ok(Listing {
                entity,
                api,
                template: list,
                parent: None,
                since: None,
            })
        });
        let listing = match listing {
            Ok(listing) => listing,
            Err(error) => return stream::once(async move { Err(error) }).boxed(),
        };
        self.pages(listing)
            .map(move |batch| {
                batch.map(|batch| {
                    self.keep_rejected(batch.rejected);
                    batch.records
                })
            })
            .boxed()
    }

    #[tracing::instrument(skip_all, fields(side = %self.side, %entity))]
    async fn children(
        &self,
        entity: EntityKind,
        contact_id: &str,
    ) -> Result<Vec<Record>, ConnectorError> {
        let api = self.entity_api(entity, "list children of")?;
        let template = self.template(
            entity,
            api.children.as_ref(),
            "list children of",
            "children",
        )?;
        if !usable_id(contact_id) {
            return Err(self.bad_record(
                EntityKind::Contact,
                Some(contact_id),
                &template.text,
                "is not an id that can be put in a URL",
            ));
        }
        self.collect(Listing {
            entity,
            api,
            template,
            parent: Some(contact_id.to_owned()),
            since: None,
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(side = %self.side, %entity, %id))]
    async fn get(
        &self,
        entity: EntityKind,
        id: &str,
        parent_id: Option<&str>,
    ) -> Result<Option<Record>, ConnectorError> {
        let api = self.entity_api(entity, "read")?;
        let template = self.template(entity, api.get.as_ref(), "read", "get")?;
        let vars = self.vars(entity, template, Some(id), parent_id)?;
        let request = self.request(template, &vars, None);
        // A 2xx that is not JSON (a proxy's maintenance or login page) is
        // the side's trouble, not the record's: retried, then the side is
        // unavailable; the record is never dead-lettered for it.
        match self.client.execute_json(&request).await {
            Ok((_, json)) => self.single(entity, api, Some(id), parent_id, &request.label, &json),
            Err(error) if matches!(error.failure.status(), Some(404 | 410)) => Ok(None),
            Err(error) => Err(self.record_error(entity, Some(id), error)),
        }
    }

    #[tracing::instrument(skip_all, fields(side = %self.side, %entity))]
    async fn create(
        &self,
        entity: EntityKind,
        parent_id: Option<&str>,
        fields: &Map<String, Value>,
    ) -> Result<Record, ConnectorError> {
        self.writable(entity, "create", self.capabilities.of(entity).create)?;
        let api = self.entity_api(entity, "create")?;
        let template = self.template(entity, api.create.as_ref(), "create", "create")?;
        let fields = self.with_parent(entity, api, template, parent_id, fields)?;
        self.create_without_duplicate(entity, api, template, parent_id, &fields)
            .await
    }

    #[tracing::instrument(skip_all, fields(side = %self.side, %entity, %id))]
    async fn update(
        &self,
        entity: EntityKind,
        id: &str,
        parent_id: Option<&str>,
        patch: &Patch,
    ) -> Result<Record, ConnectorError> {
        // Lists are written whole here: `patch.before` is not used.
        let patch = &patch.fields;
        self.writable(entity, "update", self.capabilities.of(entity).update)?;
        let api = self.entity_api(entity, "update")?;
        let template = self.template(entity, api.update.as_ref(), "update", "update")?;
        let vars = self.vars(entity, template, Some(id), parent_id)?;
        let fields = if template.method == reqwest::Method::PUT && api.get.is_some() {
            // PUT replaces the record: send it whole, with the patch applied.
            let Some(current) = self.get(entity, id, parent_id).await? else {
                return Err(self.bad_record(
                    entity,
                    Some(id),
                    &template.text,
                    "the record to update does not exist",
                ));
            };
            let mut merged = current.fields;
            for (key, value) in patch {
                merged.insert(key.clone(), value.clone());
            }
            merged
        } else {
            patch.clone()
        };
        let request = self.request(
            template,
            &vars,
            Some(Self::wrap(api, Value::Object(fields))),
        );
        let reply = match self.client.execute(&request).await {
            Ok(reply) => reply,
            Err(error) if matches!(error.failure.status(), Some(404 | 410)) => {
                return Err(self.bad_record(
                    entity,
                    Some(id),
                    &request.label,
                    "the record to update does not exist (404)",
                ))
            }
            Err(error) => return Err(self.record_error(entity, Some(id), error)),
        };
        if reply.body.iter().all(u8::is_ascii_whitespace) {
            // 204 or an empty 200: read the record back.
            return self.get(entity, id, parent_id).await?.ok_or_else(|| {
                self.bad_record(
                    entity,
                    Some(id),
                    &request.label,
                    "the record vanished right after its update",
                )
            });
        }
        let json = self.answer_json(entity, Some(id), &request.label, &reply)?;
        match self.single(entity, api, Some(id), parent_id, &request.label, &json)? {
            Some(record) => Ok(record),
            None => self.get(entity, id, parent_id).await?.ok_or_else(|| {
                self.bad_record(
                    entity,
                    Some(id),
                    &request.label,
                    "the record vanished right after its update",
                )
            }),
        }
    }

    #[tracing::instrument(skip_all, fields(side = %self.side, %entity, %id))]
    async fn delete(
        &self,
        entity: EntityKind,
        id: &str,
        parent_id: Option<&str>,
    ) -> Result<Deletion, ConnectorError> {
        self.writable(entity, "delete", self.capabilities.of(entity).delete)?;
        let api = self.entity_api(entity, "delete")?;
        let template = self.template(entity, api.delete.as_ref(), "delete", "delete")?;
        let vars = self.vars(entity, template, Some(id), parent_id)?;
        let request = self.request(template, &vars, None);
        match self.client.execute(&request).await {
            // A proxy's login or maintenance page answered instead of the
            // app: nothing says the record is gone, so it is not taken for
            // deleted (its link would be tombstoned with the record alive).
            Ok(reply) if is_html(&reply) => Err(ConnectorError::Unavailable {
                side: self.side.clone(),
                message: format!(
                    "{}: answered {} with an HTML page, not the app's answer; \
                     the delete is not taken as done",
                    request.label, reply.status
                ),
                retry_after: None,
            }),
            Ok(_) => Ok(Deletion::Deleted),
            Err(error) if matches!(error.failure.status(), Some(404 | 410)) => {
                Ok(Deletion::AlreadyGone)
            }
            Err(error) => Err(self.record_error(entity, Some(id), error)),
        }
    }

    async fn find_contacts(
        &self,
        key: MatchKey,
        value: &str,
    ) -> Result<Vec<Record>, ConnectorError> {
        let span = tracing::debug_span!("find_contacts", side = %self.side, %key);
        self.lookup(key, value).instrument(span).await
    }
}
