//! A listing as a stream of pages, whatever the pagination style: the
//! first request carries the lower bound and the page size, each page says
//! (or implies) where the next one is, and the stream ends at an empty
//! page or when there is no next one.

use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::header::{HeaderMap, LINK};
use reqwest::Method;
use serde_json::Value;
use tracing::Instrument;
use url::Url;

use super::client::{Reply, Request};
use super::records::Reader;
use super::spec::{EntityApi, Pagination, Template};
use super::{same_origin, RestConnector};
use crate::connector::{ConnectorError, Record};
use crate::domain::EntityKind;

/// What to list.
pub(crate) struct Listing<'a> {
    pub entity: EntityKind,
    pub api: &'a EntityApi,
    pub template: &'a Template,
    /// `{contact_id}` of a `children` listing.
    pub parent: Option<String>,
    /// The lower bound, sent as `updated_since_param` when there is one.
    pub since: Option<DateTime<Utc>>,
}

/// The records of one page, and the ones refused.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub records: Vec<Record>,
    pub rejected: Vec<ConnectorError>,
}

/// Where the next page is.
#[derive(Debug, Clone, PartialEq)]
enum Next {
    First,
    Page(u64),
    Offset(u64),
    Cursor(String),
    Url(Url),
    Done,
}

struct State<'a> {
    listing: Listing<'a>,
    next: Next,
    /// Pages fetched so far.
    pages: u64,
    /// The ids of the previous page: an app that ignores the paging
    /// parameters returns the same page forever.
    previous_ids: Vec<String>,
}

impl RestConnector {
    pub(crate) fn pages<'a>(
        &'a self,
        listing: Listing<'a>,
    ) -> BoxStream<'a, Result<Batch, ConnectorError>> {
        let state = State {
            listing,
            next: Next::First,
            pages: 0,
            previous_ids: Vec::new(),
        };
        stream::unfold(Some(state), move |state| async move {
            let mut state = state?;
            let span = tracing::debug_span!(
                "list",
                side = %self.side,
                entity = %state.listing.entity,
                page = state.pages + 1
            );
            match self.next_page(&mut state).instrument(span).await {
                Ok(Some(batch)) => Some((Ok(batch), Some(state))),
                Ok(None) => None,
                Err(error) => Some((Err(error), None)),
            }
        })
        .boxed()
    }

    /// Fetches the page `state` points at and moves it on; `None` at the
    /// end.
    async fn next_page(&self, state: &mut State<'_>) -> Result<Option<Batch>, ConnectorError> {
        let Some(request) = self.page_request(state) else {
            return Ok(None);
        };
        let listing = &state.listing;
        let label = request.label.clone();
        let page_error = |message: String| ConnectorError::Unavailable {
            side: self.side.clone(),
            message: format!("{label}: {message}"),
            retry_after: None,
        };
        // A 2xx that is not JSON (a proxy's login page, an empty body) is
        // retried by the client, then named as unreadable.
        let (reply, body) = self
            .client
            .execute_json(&request)
            .await
            .map_err(|e| match &listing.parent {
                // A contact's records: a 404 or other 4xx is that
                // contact's problem, not the side's.
                Some(parent) => self.record_error(EntityKind::Contact, Some(parent), e),
                None => self.side_error(e),
            })?;
        state.pages += 1;
        let reader = Reader {
            entity: listing.entity,
            api: listing.api,
        };
        let items = reader.array(&body).map_err(page_error)?;
        let (batch, ids) = self.read_batch(listing, &reader, &label, items);
        if items.is_empty() {
            state.next = Next::Done;
            return Ok(None);
        }
        if !ids.is_empty() && ids == state.previous_ids {
            tracing::warn!(
                side = %self.side,
                call = %label,
                "the app returned the same page twice: does it honour the pagination parameters? Stopping here"
            );
            state.next = Next::Done;
            return Ok(None);
        }
        state.previous_ids = ids;
        state.next = self
            .following(state, &request.url, &reply, &body, items.len())
            .map_err(page_error)?;
        Ok(Some(batch))
    }

    /// The request for the page `state` points at; `None` at the end.
    fn page_request(&self, state: &State<'_>) -> Option<Request> {
        let listing = &state.listing;
        let api = listing.api;
        let position = match &state.next {
            Next::Done => return None,
            Next::Url(url) => {
                // The next page's URL comes from the app: the metric
                // label stays the listing's template.
                return Some(Request {
                    method: Method::GET,
                    url: url.clone(),
                    label: format!(
                        "GET {} (page {})",
                        crate::connector::http::bounded(url.path()),
                        state.pages + 1
                    ),
                    endpoint: self.endpoint(listing.template),
                    body: None,
                    idempotent: true,
                });
            }
            position => position,
        };
        let vars: Vec<(&str, &str)> = listing
            .parent
            .as_deref()
            .map(|p| (super::spec::CONTACT_ID, p))
            .into_iter()
            .collect();
        let mut request = self.request(listing.template, &vars, None);
        {
            let mut query = request.url.query_pairs_mut();
            if let (Some(since), Some(param)) = (listing.since, &api.updated_since_param) {
                query.append_pair(param, &api.timestamp_format.write(since));
            }
            if let Some(size) = api.pagination.size() {
                query.append_pair(&size.param, &size.value.to_string());
            }
            if let Some((param, value)) = position_param(&api.pagination, position) {
                query.append_pair(param, &value);
            }
        }
        if state.pages > 0 {
            request.label = format!("{} (page {})", request.label, state.pages + 1);
        }
        Some(request)
    }

    /// The records of a page (each refused one set aside, naming its
    /// index), and the ids of the ones read.
    fn read_batch(
        &self,
        listing: &Listing<'_>,
        reader: &Reader<'_>,
        label: &str,
        items: &[Value],
    ) -> (Batch, Vec<String>) {
        let mut batch = Batch::default();
        let mut ids = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match reader.record(item, listing.parent.as_deref()) {
                Ok(record) => {
                    ids.push(record.id.clone());
                    batch.records.push(record);
                }
                Err(rejected) => {
                    batch.rejected.push(ConnectorError::Record {
                        side: self.side.clone(),
                        entity: listing.entity,
                        id: rejected.id,
                        message: format!(
                            "{label}: the record at index {index} of the page {}",
                            rejected.message
                        ),
                    });
                }
            }
        }
        (batch, ids)
    }

    /// Where the page after the one just read (`count` records, answered
    /// by `reply` with `body` to a request for `url`) is, as the listing's
    /// pagination style says.
    fn following(
        &self,
        state: &State<'_>,
        url: &Url,
        reply: &Reply,
        body: &Value,
        count: usize,
    ) -> Result<Next, String> {
        Ok(match &state.listing.api.pagination {
            Pagination::None => Next::Done,
            Pagination::Page { first, .. } => match state.next {
                Next::Page(page) => Next::Page(page + 1),
                _ => Next::Page(first + 1),
            },
            Pagination::Offset { .. } => match state.next {
                Next::Offset(offset) => Next::Offset(offset + count as u64),
                _ => Next::Offset(count as u64),
            },
            Pagination::Cursor { cursor_pointer, .. } => match cursor_pointer.get(body) {
                Some(Value::String(cursor)) if !cursor.is_empty() => {
                    if state.next == Next::Cursor(cursor.clone()) {
                        return Err(format!(
                            "the app returned the cursor it was given ({cursor_pointer}); stopping rather than looping"
                        ));
                    }
                    Next::Cursor(cursor.clone())
                }
                Some(Value::Number(n)) => Next::Cursor(n.to_string()),
                _ => Next::Done,
            },
            Pagination::LinkHeader { .. } => match next_link(&reply.headers) {
                Some(link) => self.next_url(url, &link)?,
                None => Next::Done,
            },
            Pagination::NextUrl { next_pointer, .. } => match next_pointer.get(body) {
                Some(Value::String(link)) if !link.trim().is_empty() => {
                    self.next_url(url, link.trim())?
                }
                _ => Next::Done,
            },
        })
    }

    /// The next page's URL, resolved against the current one; refused when
    /// it leaves the app's origin (the credentials would follow it).
    fn next_url(&self, current: &Url, link: &str) -> Result<Next, String> {
        let next = current
            .join(link)
            .map_err(|e| format!("the next page's URL {link:?} does not parse ({e})"))?;
        if !same_origin(&next, &self.client.base_url) {
            return Err(format!(
                "the next page is on another origin ({}), refused: credentials are only sent to base_url's origin",
                next.origin().ascii_serialization()
            ));
        }
        if next == *current {
            return Ok(Next::Done);
        }
        Ok(Next::Url(next))
    }
}

/// The query parameter that asks for the page at `position`, if the
/// pagination style has one (the first page of a cursor listing has none).
fn position_param<'p>(pagination: &'p Pagination, position: &Next) -> Option<(&'p str, String)> {
    match (pagination, position) {
        (
            Pagination::Page {
                page_param, first, ..
            },
            Next::First,
        ) => Some((page_param, first.to_string())),
        (Pagination::Page { page_param, .. }, Next::Page(page)) => {
            Some((page_param, page.to_string()))
        }
        (Pagination::Offset { offset_param, .. }, Next::First) => {
            Some((offset_param, "0".to_owned()))
        }
        (Pagination::Offset { offset_param, .. }, Next::Offset(offset)) => {
            Some((offset_param, offset.to_string()))
        }
        (Pagination::Cursor { cursor_param, .. }, Next::Cursor(cursor)) => {
            Some((cursor_param, cursor.clone()))
        }
        _ => None,
    }
}

/// The target of the `rel="next"` link of RFC 8288 `Link` headers.
fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        let mut rest = text;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if !rest.starts_with('<') {
                break;
            }
            let Some(end) = rest.find('>') else {
                break;
            };
            let target = &rest[1..end];
            rest = &rest[end + 1..];
            let mut params_end = rest.len();
            let mut quoted = false;
            for (i, c) in rest.char_indices() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => {
                        params_end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let params = &rest[..params_end];
            rest = &rest[params_end..];
            let is_next = params.split(';').any(|param| {
                let Some((name, value)) = param.split_once('=') else {
                    return false;
                };
                name.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            });
            if is_next {
                return Some(target.trim().to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn finds_the_next_link() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            HeaderValue::from_static(
                r#"<https://x.test/a?page=1>; rel="prev first", <https://x.test/a?page=3&q=a,b>; rel="next"; title="n,x""#,
            ),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("https://x.test/a?page=3&q=a,b")
        );
        headers.insert(LINK, HeaderValue::from_static(r#"</a?page=1>; rel=last"#));
        assert_eq!(next_link(&headers), None);
    }
}
