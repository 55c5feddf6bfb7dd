//! The delete policy `tag`: the counterpart of a deleted record is kept
//! and tagged.

use serde_json::Value;

use super::outbox::WritePayload;
use super::{Engine, PairRuntime};
use crate::connector::{ConnectorError, Patch, Record};
use crate::domain::Side;
use crate::store::OutboxItem;

impl Engine {
    /// Adds the policy's tag to the record, keeping its others. Where the
    /// side has a call that adds tags ([`Connector::add_tags`]: GHL's
    /// `POST /contacts/{id}/tags`) that is the one request, with no read
    /// and no list written whole, so no tag added meanwhile can be
    /// wiped; the write then answers with no record (the link is
    /// tombstoned, nothing of it is synced again). Elsewhere the record is
    /// read and its list written back with the tag.
    ///
    /// [`Connector::add_tags`]: crate::connector::Connector::add_tags
    pub(super) async fn retag(
        &self,
        pair: &PairRuntime,
        target: Side,
        item: &OutboxItem,
        id: &str,
        payload: &WritePayload,
    ) -> Result<Option<Record>, ConnectorError> {
        let connector = pair.connector(target);
        let map = &pair.settings.map;
        let mapped = |changes| {
            map.to_native(item.entity, target, &changes)
                .map_err(|e| ConnectorError::Record {
                    side: connector.side().to_owned(),
                    entity: item.entity,
                    id: Some(id.to_owned()),
                    message: e.to_string(),
                })
        };
        let tag = Value::from(payload.tag.clone().unwrap_or_default());
        let added = mapped([("tags".to_owned(), Value::Array(vec![tag.clone()]))].into())?;
        if let Some(done) = connector.add_tags(item.entity, id, &added).await {
            return done.map(|()| None);
        }
        let Some(current) = connector.get(item.entity, id, None).await? else {
            return Ok(None);
        };
        let mut canonical = map
            .to_canonical(item.entity, target, &current.fields)
            .unwrap_or_default();
        let mut tags: Vec<Value> = match canonical.remove("tags") {
            Some(Value::Array(tags)) => tags,
            Some(other) => vec![other],
            None => Vec::new(),
        };
        if !tags.contains(&tag) {
            tags.push(tag);
        }
        let patch = Patch {
            fields: mapped([("tags".to_owned(), Value::Array(tags))].into())?,
            before: current.fields,
        };
        connector
            .update(item.entity, id, None, &patch)
            .await
            .map(Some)
    }
}
