//! A simulated side as the daemon sees it: the production engine's
//! `Connector` trait served from a [`SideModel`], every call passing the
//! world's gates and meeting the seed's faults.
//!
//! Each call is served as the real system answers the request the real
//! connector sends for it, and is counted as that many GHL requests:
//! contacts change feed `POST /contacts/search` (the index, with its lag),
//! listing `GET /contacts/`, children `GET /contacts/{id}/tasks|notes`, a
//! contact create refused as a duplicate when another holds its email or
//! phone, tags written as `POST`/`DELETE /contacts/{id}/tags` deltas
//! against what the write's decision saw (a `PUT` with `tags` would replace
//! them: field notes, "Tags"), the duplicate search answering one contact.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use ghl_sync::connector::{
    Capabilities, Connector, ConnectorError, Deletion, EntityCaps, Page, Patch, Record, Stamp,
};
use ghl_sync::domain::{EntityKind, MatchKey, Side};
use serde_json::{Map, Value};

use crate::faults::Fault;
use crate::model::{SideModel, Stored};
use crate::workload::{EMAIL, PHONE, TAGS};
use crate::world::{State, World};

/// The records a call's answer shows the daemon.
trait Shows {
    fn shown(&self) -> Vec<&Record>;
}

impl Shows for Vec<Record> {
    fn shown(&self) -> Vec<&Record> {
        self.iter().collect()
    }
}

impl Shows for Option<Record> {
    fn shown(&self) -> Vec<&Record> {
        self.iter().collect()
    }
}

impl Shows for Record {
    fn shown(&self) -> Vec<&Record> {
        vec![self]
    }
}

impl Shows for () {
    fn shown(&self) -> Vec<&Record> {
        Vec::new()
    }
}

impl Shows for Deletion {
    fn shown(&self) -> Vec<&Record> {
        Vec::new()
    }
}

/// Records per page of every listing: small, so paging and the watermark
/// move page by page.
const PAGE: usize = 4;

/// One side of the pair, in process.
#[derive(Debug)]
pub struct SimSide {
    world: Arc<World>,
    role: Side,
    capabilities: Capabilities,
}

impl SimSide {
    pub fn new(world: Arc<World>, role: Side) -> Self {
        let feed = |change_feed| EntityCaps {
            read: true,
            create: true,
            update: true,
            delete: true,
            change_feed,
        };
        let children_feed = world.lock().sides[role].behaviour.children_feed;
        SimSide {
            world,
            role,
            capabilities: Capabilities {
                entities: [
                    (EntityKind::Contact, feed(true)),
                    (EntityKind::Task, feed(children_feed)),
                    (EntityKind::Note, feed(children_feed)),
                ]
                .into(),
                webhooks: true,
                match_keys: vec![MatchKey::Email, MatchKey::Phone],
            },
        }
    }

    /// One call: gate, fault, the side's work, gate. `requests` is what
    /// GHL counts for it.
    async fn call<T: Shows>(
        &self,
        what: String,
        requests: impl FnOnce(&State) -> u64,
        write: Option<EntityKind>,
        serve: impl FnOnce(&mut State) -> Result<T, ConnectorError>,
        show: impl FnOnce(&T) -> String,
    ) -> Result<T, ConnectorError> {
        self.world.gate(&what).await;
        let result = {
            let mut state = self.world.lock();
            let n = requests(&state);
            state.count_requests(self.role, n);
            let kind: String = what.split(' ').take(2).collect::<Vec<_>>().join(" ");
            *state.covered.calls.entry(kind).or_default() += 1;
            let ghl_create = self.role == Side::Ghl
                && write == Some(EntityKind::Contact)
                && what.starts_with("create");
            let fault = {
                let State {
                    rng,
                    chaos,
                    covered,
                    ..
                } = &mut *state;
                Fault::roll(rng, chaos, covered, write.is_some(), ghl_create)
            };
            let result = match fault {
                Some(Fault::Before(_)) => {
                    Err(fault.expect("some").error(self.side(), entity_of(write)))
                }
                Some(after) => {
                    serve(&mut state).and(Err(after.error(self.side(), entity_of(write))))
                }
                None => serve(&mut state),
            };
            state.collect_webhooks();
            if let Ok(value) = &result {
                let ops = state.workload.ops;
                state.window.read(self.role, &value.shown(), ops);
            }
            let shown = match &result {
                Ok(value) => show(value),
                Err(error) => format!("ERR {error}"),
            };
            state.log(format!("daemon {} {what} -> {shown}", self.role.name()));
            result
        };
        self.world.gate(&what).await;
        result
    }

    fn record(&self, model: &SideModel, entity: EntityKind, id: &str, stored: &Stored) -> Record {
        let dated = entity == EntityKind::Contact || model.behaviour.children_dated;
        let (updated_at, stamp) = if dated {
            (stored.updated_at, Stamp::Side)
        } else {
            (ghl_sync::clock::now(), Stamp::ReadAt)
        };
        Record {
            entity,
            id: id.to_owned(),
            parent_id: stored.parent.clone(),
            updated_at,
            stamp,
            fields: stored.fields.clone(),
        }
    }

    fn records(
        &self,
        model: &SideModel,
        entity: EntityKind,
        list: &[(String, Stored)],
    ) -> Vec<Record> {
        list.iter()
            .map(|(id, stored)| self.record(model, entity, id, stored))
            .collect()
    }

    fn missing(&self, entity: EntityKind, id: &str, message: &str) -> ConnectorError {
        ConnectorError::Record {
            side: self.side().to_owned(),
            entity,
            id: Some(id.to_owned()),
            message: message.to_owned(),
        }
    }
}

fn entity_of(write: Option<EntityKind>) -> EntityKind {
    write.unwrap_or(EntityKind::Contact)
}

fn one(_: &State) -> u64 {
    1
}

fn ids(records: &[Record]) -> String {
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    format!("[{}]", ids.join(" "))
}

/// Where a page starts: after this (change time, id).
type Cursor = Option<(DateTime<Utc>, String)>;

impl State {
    /// Counts `n` requests to `role` (only GHL's are budgeted).
    pub fn count_requests(&mut self, role: Side, n: u64) {
        if role != Side::Ghl || n == 0 {
            return;
        }
        let now = ghl_sync::clock::now();
        self.covered.ghl_requests += n;
        self.ghl_window.extend(std::iter::repeat_n(now, n as usize));
        while self
            .ghl_window
            .front()
            .is_some_and(|at| now - *at >= chrono::Duration::seconds(10))
        {
            self.ghl_window.pop_front();
        }
        self.covered.ghl_peak_10s = self.covered.ghl_peak_10s.max(self.ghl_window.len() as u64);
    }
}

/// The tags a write leaves: GHL applies the delta between what the
/// decision saw and what it wants to what the contact holds now.
fn tags_after(current: Option<&Value>, before: Option<&Value>, wanted: &Value) -> (Value, u64) {
    let list = |v: Option<&Value>| -> Vec<Value> {
        v.and_then(Value::as_array).cloned().unwrap_or_default()
    };
    let (current, before, wanted) = (list(current), list(before), list(Some(wanted)));
    let add: Vec<&Value> = wanted.iter().filter(|t| !before.contains(t)).collect();
    let remove: Vec<&Value> = before.iter().filter(|t| !wanted.contains(t)).collect();
    let mut after: Vec<Value> = current
        .into_iter()
        .filter(|t| !remove.contains(&t))
        .collect();
    for tag in &add {
        if !after.contains(tag) {
            after.push((*tag).clone());
        }
    }
    let requests = u64::from(!add.is_empty()) + u64::from(!remove.is_empty());
    (Value::Array(after), requests)
}

fn same_key(key: MatchKey, role: Side, stored: &Stored, value: &str) -> bool {
    let name = match key {
        MatchKey::Email => EMAIL.on(role),
        MatchKey::Phone => PHONE.on(role),
    };
    stored
        .fields
        .get(name)
        .and_then(Value::as_str)
        .is_some_and(|held| held.trim().eq_ignore_ascii_case(value))
}

impl SimSide {
    /// One page of the change feed after `cursor`.
    fn feed_page(
        &self,
        state: &State,
        entity: EntityKind,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        cursor: &Cursor,
    ) -> Vec<Record> {
        let model = &state.sides[self.role];
        let listed = if entity == EntityKind::Contact {
            model.indexed_contacts()
        } else {
            model.dated(entity)
        };
        let page: Vec<(String, Stored)> = listed
            .into_iter()
            .filter(|(_, s)| s.updated_at >= since && s.updated_at <= until)
            .filter(|(id, s)| {
                cursor
                    .as_ref()
                    .is_none_or(|(at, after)| (s.updated_at, id) > (*at, after))
            })
            .take(PAGE)
            .collect();
        self.records(model, entity, &page)
    }

    /// One page of the contact listing after id `after`.
    /// One page of the contact listing after id `after`: GHL's is the
    /// search (the connector lists with `POST /contacts/search`), so it
    /// shows the index, lag and all; the app's shows what is there.
    fn listing_page(&self, state: &State, after: &Option<String>) -> Vec<Record> {
        let model = &state.sides[self.role];
        let mut listed: Vec<(String, Stored)> = if self.listing_lags() {
            model.indexed_contacts()
        } else {
            model
                .live(EntityKind::Contact)
                .map(|(id, s)| (id.clone(), s.clone()))
                .collect()
        };
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        let page: Vec<(String, Stored)> = listed
            .into_iter()
            .filter(|(id, _)| after.as_ref().is_none_or(|after| id > after))
            .take(PAGE)
            .collect();
        self.records(model, EntityKind::Contact, &page)
    }
}

#[async_trait]
impl Connector for SimSide {
    fn side(&self) -> &str {
        self.role.name()
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
        stream::unfold(
            Some(None::<(DateTime<Utc>, String)>),
            move |cursor| async move {
                let cursor = cursor?;
                let what = format!("changes {entity} since {}", since.format("%H:%M:%S%.3f"));
                let page = self
                    .call(
                        what,
                        one,
                        None,
                        |state| Ok(self.feed_page(state, entity, since, until, &cursor)),
                        |r| ids(r),
                    )
                    .await;
                match page {
                    Ok(records) if records.is_empty() => None,
                    Ok(records) => {
                        let last = records.last().expect("not empty");
                        let model_at = if last.stamp == Stamp::Side {
                            last.updated_at
                        } else {
                            until
                        };
                        let next =
                            (records.len() == PAGE).then(|| Some((model_at, last.id.clone())));
                        Some((Ok(Page::new(records)), next))
                    }
                    Err(error) => Some((Err(error), None)),
                }
            },
        )
        .boxed()
    }

    fn all_contacts(&self) -> BoxStream<'_, Result<Vec<Record>, ConnectorError>> {
        stream::unfold(Some(None::<String>), move |after| async move {
            let after = after?;
            let page = self
                .call(
                    "list contacts".into(),
                    one,
                    None,
                    |state| Ok(self.listing_page(state, &after)),
                    |r| ids(r),
                )
                .await;
            match page {
                Ok(records) if records.is_empty() => None,
                Ok(records) => {
                    let next =
                        (records.len() == PAGE).then(|| records.last().map(|r| r.id.clone()));
                    Some((Ok(records), next))
                }
                Err(error) => Some((Err(error), None)),
            }
        })
        .boxed()
    }

    fn listing_lags(&self) -> bool {
        self.role == Side::Ghl
    }

    /// GHL's location-wide `POST /locations/{locationId}/tasks/search`
    /// (apps/locations.json; field notes, "Tasks and notes"), when the
    /// seed granted `locations/tasks.readonly`: 100 contacts a request.
    async fn children_of_many(
        &self,
        entity: EntityKind,
        contacts: &[String],
    ) -> Option<Result<Page, ConnectorError>> {
        let granted = self.world.lock().sides[self.role].behaviour.task_search;
        if self.role != Side::Ghl || entity != EntityKind::Task || !granted {
            return None;
        }
        let what = format!("search tasks of {} contacts", contacts.len());
        let requests = |_: &State| contacts.len().div_ceil(100).max(1) as u64;
        let found = self
            .call(
                what,
                requests,
                None,
                |state| {
                    let model = &state.sides[self.role];
                    let tasks: Vec<(String, Stored)> = contacts
                        .iter()
                        .flat_map(|contact| model.children(entity, contact))
                        .collect();
                    Ok(self.records(model, entity, &tasks))
                },
                |r| ids(r),
            )
            .await;
        Some(found.map(Page::new))
    }

    async fn children(
        &self,
        entity: EntityKind,
        contact_id: &str,
    ) -> Result<Vec<Record>, ConnectorError> {
        let what = format!("{entity}s of {contact_id}");
        self.call(
            what,
            one,
            None,
            |state| {
                let model = &state.sides[self.role];
                Ok(self.records(model, entity, &model.children(entity, contact_id)))
            },
            |r| ids(r),
        )
        .await
    }

    async fn get(
        &self,
        entity: EntityKind,
        id: &str,
        _: Option<&str>,
    ) -> Result<Option<Record>, ConnectorError> {
        self.call(
            format!("get {entity} {id}"),
            one,
            None,
            |state| {
                let model = &state.sides[self.role];
                Ok(model
                    .get(entity, id)
                    .map(|s| self.record(model, entity, id, s)))
            },
            |r| {
                r.as_ref()
                    .map(|r| Value::Object(r.fields.clone()).to_string())
                    .unwrap_or("none".into())
            },
        )
        .await
    }

    async fn create(
        &self,
        entity: EntityKind,
        parent_id: Option<&str>,
        fields: &Map<String, Value>,
    ) -> Result<Record, ConnectorError> {
        let what = format!("create {entity} {}", Value::Object(fields.clone()));
        self.call(
            what,
            one,
            Some(entity),
            |state| {
                let model = &mut state.sides[self.role];
                if let Some(parent) = parent_id.filter(|_| entity != EntityKind::Contact) {
                    if model.get(EntityKind::Contact, parent).is_none() {
                        return Err(self.missing(
                            EntityKind::Contact,
                            parent,
                            "404 contact not found",
                        ));
                    }
                }
                if let Some(existing) = model
                    .duplicate_of(fields)
                    .filter(|_| entity == EntityKind::Contact)
                {
                    return Err(ConnectorError::Duplicate {
                        side: self.side().to_owned(),
                        entity,
                        existing_id: Some(existing),
                        message: "400 This location does not allow duplicated contacts".into(),
                    });
                }
                let id = model.insert(entity, parent_id.map(str::to_owned), fields.clone());
                let stored = model.get(entity, &id).expect("just made");
                Ok(self.record(model, entity, &id, stored))
            },
            |r| r.id.clone(),
        )
        .await
    }

    async fn update(
        &self,
        entity: EntityKind,
        id: &str,
        _: Option<&str>,
        patch: &Patch,
    ) -> Result<Record, ConnectorError> {
        let what = format!(
            "update {entity} {id} {}",
            Value::Object(patch.fields.clone())
        );
        let tags = TAGS.on(self.role);
        let deltas = self.role == Side::Ghl
            && entity == EntityKind::Contact
            && patch.fields.contains_key(tags);
        let requests = |state: &State| -> u64 {
            if !deltas {
                return 1;
            }
            let current = state.sides[self.role]
                .get(entity, id)
                .and_then(|s| s.fields.get(tags));
            let (_, n) = tags_after(current, patch.before.get(tags), &patch.fields[tags]);
            n + u64::from(patch.fields.len() > 1)
        };
        self.call(
            what,
            requests,
            Some(entity),
            |state| {
                let model = &mut state.sides[self.role];
                let Some(stored) = model.get(entity, id) else {
                    return Err(self.missing(entity, id, "404 not found"));
                };
                let mut fields = patch.fields.clone();
                if deltas {
                    let (after, _) = tags_after(
                        stored.fields.get(tags),
                        patch.before.get(tags),
                        &patch.fields[tags],
                    );
                    fields.insert(tags.to_owned(), after);
                }
                let held = stored.fields.clone();
                let State {
                    window, workload, ..
                } = &mut *state;
                window.write(self.role, entity, id, &held, &fields, &workload.ledger);
                let model = &mut state.sides[self.role];
                model.patch(entity, id, &fields);
                let stored = model.get(entity, id).expect("still there");
                Ok(self.record(model, entity, id, stored))
            },
            |r| Value::Object(r.fields.clone()).to_string(),
        )
        .await
    }

    async fn add_tags(
        &self,
        entity: EntityKind,
        id: &str,
        tags: &Map<String, Value>,
    ) -> Option<Result<(), ConnectorError>> {
        if self.role != Side::Ghl {
            return None;
        }
        let name = TAGS.on(self.role);
        let wanted = tags.get(name)?.clone();
        let result = self
            .call(
                format!("add tags {entity} {id} {wanted}"),
                one,
                Some(entity),
                |state| {
                    let model = &mut state.sides[self.role];
                    let Some(stored) = model.get(entity, id) else {
                        return Err(self.missing(entity, id, "404 not found"));
                    };
                    let (after, _) = tags_after(
                        stored.fields.get(name),
                        Some(&Value::Array(Vec::new())),
                        &wanted,
                    );
                    model.patch(entity, id, &Map::from_iter([(name.to_owned(), after)]));
                    Ok(())
                },
                |_| "ok".into(),
            )
            .await;
        Some(result)
    }

    async fn delete(
        &self,
        entity: EntityKind,
        id: &str,
        _: Option<&str>,
    ) -> Result<Deletion, ConnectorError> {
        self.call(
            format!("delete {entity} {id}"),
            one,
            Some(entity),
            |state| {
                Ok(if state.sides[self.role].remove(entity, id) {
                    Deletion::Deleted
                } else {
                    Deletion::AlreadyGone
                })
            },
            |d| format!("{d:?}"),
        )
        .await
    }

    async fn find_contacts(
        &self,
        key: MatchKey,
        value: &str,
    ) -> Result<Vec<Record>, ConnectorError> {
        self.call(
            format!("find contacts {key} = {value}"),
            one,
            None,
            |state| {
                let model = &state.sides[self.role];
                let found: Vec<(String, Stored)> = model
                    .live(EntityKind::Contact)
                    .filter(|(_, s)| same_key(key, self.role, s, value))
                    .map(|(id, s)| (id.clone(), s.clone()))
                    // GHL's duplicate search answers one contact.
                    .take(if self.role == Side::Ghl {
                        1
                    } else {
                        usize::MAX
                    })
                    .collect();
                Ok(self.records(model, EntityKind::Contact, &found))
            },
            |r| ids(r),
        )
        .await
    }
}
