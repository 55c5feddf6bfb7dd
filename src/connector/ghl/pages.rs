//! The three ways GHL pages through contacts, each as an async stream of
//! pages. A page is requested again (with retries) until it succeeds, and
//! the cursor moves only past a page that was received whole, so faults in
//! the middle of a listing neither lose nor repeat a page.

use futures::stream::{self, Stream};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::client::{GhlClient, Request};
use super::error::GhlError;
use super::models::{Contact, SearchQuery};

/// Most contacts `GET /contacts/` returns per page.
pub const LIST_LIMIT_MAX: u32 = 100;
/// Most contacts a search returns per page.
pub const SEARCH_LIMIT_MAX: u32 = 500;

#[derive(Deserialize)]
struct SearchPage {
    #[serde(default)]
    contacts: Vec<Contact>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(default)]
    start_after_id: Option<String>,
    #[serde(default)]
    start_after: Option<Value>,
}

#[derive(Deserialize)]
struct ListPage {
    #[serde(default)]
    contacts: Vec<Contact>,
    #[serde(default)]
    meta: Option<ListMeta>,
}

/// Where the next search page starts.
#[derive(Debug, Clone)]
enum SearchCursor {
    First,
    /// After the `searchAfter` values of the previous page's last contact.
    After(Value),
    /// Page numbers, when contacts carry no `searchAfter`.
    Page(u32),
    Done,
}

impl GhlClient {
    /// `POST /contacts/search`, page by page until the results run out.
    pub fn search_contacts(
        &self,
        query: SearchQuery,
    ) -> impl Stream<Item = Result<Vec<Contact>, GhlError>> + '_ {
        let limit = query.page_limit.clamp(1, SEARCH_LIMIT_MAX);
        stream::try_unfold(SearchCursor::First, move |cursor| {
            let query = query.clone();
            async move {
                let mut body = json!({
                    "locationId": self.location_id(),
                    "pageLimit": limit,
                    "filters": query.filters,
                    "sort": query.sort,
                });
                match &cursor {
                    SearchCursor::Done => return Ok(None),
                    SearchCursor::First => body["page"] = json!(1),
                    SearchCursor::After(after) => body["searchAfter"] = after.clone(),
                    SearchCursor::Page(page) => body["page"] = json!(page),
                }
                let request =
                    Request::write(Method::POST, "/contacts/search".into(), Some(&body)).reading();
                let page: SearchPage = self.execute(&request).await?;
                let full = page.contacts.len() as u32 >= limit;
                let next = match (
                    full,
                    page.contacts
                        .last()
                        .and_then(|c| c.extra.get("searchAfter")),
                ) {
                    (false, _) => SearchCursor::Done,
                    (true, Some(after)) => SearchCursor::After(after.clone()),
                    (true, None) => SearchCursor::Page(match cursor {
                        SearchCursor::Page(page) => page + 1,
                        _ => 2,
                    }),
                };
                Ok(Some((page.contacts, next)))
            }
        })
    }

    /// `GET /contacts/` (deprecated, still the cheapest full listing):
    /// `startAfter` + `startAfterId` paging, `limit` at most 100.
    pub fn list_contacts(
        &self,
        limit: u32,
    ) -> impl Stream<Item = Result<Vec<Contact>, GhlError>> + '_ {
        let limit = limit.clamp(1, LIST_LIMIT_MAX);
        stream::try_unfold(Some(None::<(String, String)>), move |cursor| async move {
            let Some(after) = cursor else {
                return Ok(None);
            };
            let mut request = Request::get("/contacts/".into())
                .query("locationId", self.location_id())
                .query("limit", limit.to_string());
            if let Some((start_after, start_after_id)) = &after {
                request = request
                    .query("startAfter", start_after.clone())
                    .query("startAfterId", start_after_id.clone());
            }
            let page: ListPage = self.execute(&request).await?;
            let next = match page.meta {
                Some(ListMeta {
                    start_after_id: Some(id),
                    start_after: Some(at),
                }) if page.contacts.len() as u32 >= limit => {
                    let at = match at {
                        Value::String(text) => text,
                        other => other.to_string(),
                    };
                    Some(Some((at, id)))
                }
                _ => None,
            };
            Ok(Some((page.contacts, next)))
        })
    }

    /// `GET /contacts/business/:businessId`: `skip`/`limit` paging.
    pub fn list_business_contacts<'a>(
        &'a self,
        business_id: &'a str,
        limit: u32,
    ) -> impl Stream<Item = Result<Vec<Contact>, GhlError>> + 'a {
        let limit = limit.clamp(1, LIST_LIMIT_MAX);
        let path = format!(
            "/contacts/business/{}",
            url::form_urlencoded::byte_serialize(business_id.as_bytes()).collect::<String>()
        );
        stream::try_unfold(Some(0u32), move |skip| {
            let path = path.clone();
            async move {
                let Some(skip) = skip else {
                    return Ok(None);
                };
                let request = Request::get(path)
                    .query("locationId", self.location_id())
                    .query("limit", limit.to_string())
                    .query("skip", skip.to_string());
                let page: SearchPage = self.execute(&request).await?;
                let next = (page.contacts.len() as u32 >= limit).then_some(skip + limit);
                Ok(Some((page.contacts, next)))
            }
        })
    }
}
