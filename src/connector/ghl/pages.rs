//! The three ways GHL pages through contacts, each as an async stream of
//! pages. A page is requested again (with retries) until it succeeds, and
//! the cursor moves only past a page that was received whole, so faults in
//! the middle of a listing neither lose nor repeat a page.
//!
//! Pages are read record by record ([`Listing`]): a contact that does not
//! fit the model is set aside on its own, and the cursor still moves past
//! it, since it is worked out from the page's raw records (`searchAfter`
//! of the last one, the envelope's `meta`, the number of records), never
//! from what could be read of them.

use futures::stream::{self, Stream, StreamExt};
use reqwest::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::client::{ApiPath, GhlClient, Request};
use super::error::GhlError;
use super::models::{Contact, Listing, SearchQuery};
use super::reading::read_records;

/// Most contacts `GET /contacts/` returns per page.
pub const LIST_LIMIT_MAX: u32 = 100;
/// Most contacts a search returns per page.
pub const SEARCH_LIMIT_MAX: u32 = 500;

/// What [`Listing`]s name their records.
const CONTACT: &str = "contact";
/// `POST /contacts/search`.
const SEARCH: &str = "/contacts/search";
/// `GET /contacts/` (deprecated).
const LIST: &str = "/contacts/";

/// A page of contacts, each kept as raw JSON until it is read on its own.
/// `contacts: null` reads as no contacts, like an absent list.
#[derive(Deserialize)]
struct SearchPage {
    #[serde(default)]
    contacts: Option<Vec<Box<RawValue>>>,
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
    contacts: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    meta: Option<ListMeta>,
}

/// The `searchAfter` of a raw search result, whatever else it holds.
#[derive(Deserialize)]
struct SearchAfter {
    #[serde(default, rename = "searchAfter")]
    search_after: Option<Value>,
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
    /// `POST /contacts/search`, page by page until the results run out;
    /// contacts that cannot be read are set aside in each page's
    /// [`Listing::unreadable`].
    pub fn search_contact_pages(
        &self,
        query: SearchQuery,
    ) -> impl Stream<Item = Result<Listing<Contact>, GhlError>> + '_ {
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
                    Request::write(Method::POST, ApiPath::fixed(SEARCH), Some(&body)).reading();
                let page: SearchPage = self.execute(&request).await?;
                let raw = page.contacts.unwrap_or_default();
                let full = raw.len() as u32 >= limit;
                let after = raw.last().and_then(|last| {
                    serde_json::from_str::<SearchAfter>(last.get())
                        .ok()?
                        .search_after
                        .filter(|after| !after.is_null())
                });
                let next = match (full, after) {
                    (false, _) => SearchCursor::Done,
                    (true, Some(after)) => SearchCursor::After(after),
                    (true, None) => SearchCursor::Page(match cursor {
                        SearchCursor::Page(page) => page + 1,
                        _ => 2,
                    }),
                };
                let call = self.call(&Method::POST, &ApiPath::fixed(SEARCH));
                Ok(Some((read_records(&call, CONTACT, Some(raw)), next)))
            }
        })
    }

    /// [`GhlClient::search_contact_pages`] for callers that need every
    /// contact: a page with an unreadable one fails, naming it.
    pub fn search_contacts(
        &self,
        query: SearchQuery,
    ) -> impl Stream<Item = Result<Vec<Contact>, GhlError>> + '_ {
        self.search_contact_pages(query)
            .map(|page| page.and_then(Listing::strict))
    }

    /// `GET /contacts/` (deprecated, still the cheapest full listing):
    /// `startAfter` + `startAfterId` paging, `limit` at most 100; contacts
    /// that cannot be read are set aside in each page's
    /// [`Listing::unreadable`].
    pub fn list_contact_pages(
        &self,
        limit: u32,
    ) -> impl Stream<Item = Result<Listing<Contact>, GhlError>> + '_ {
        let limit = limit.clamp(1, LIST_LIMIT_MAX);
        stream::try_unfold(Some(None::<(String, String)>), move |cursor| async move {
            let Some(after) = cursor else {
                return Ok(None);
            };
            let mut request = Request::get(ApiPath::fixed(LIST))
                .query("locationId", self.location_id())
                .query("limit", limit.to_string());
            if let Some((start_after, start_after_id)) = &after {
                request = request
                    .query("startAfter", start_after.clone())
                    .query("startAfterId", start_after_id.clone());
            }
            let page: ListPage = self.execute(&request).await?;
            let raw = page.contacts.unwrap_or_default();
            let next = match page.meta {
                Some(ListMeta {
                    start_after_id: Some(id),
                    start_after: Some(at),
                }) if raw.len() as u32 >= limit => {
                    let at = match at {
                        Value::String(text) => text,
                        other => other.to_string(),
                    };
                    Some(Some((at, id)))
                }
                _ => None,
            };
            let call = self.call(&Method::GET, &ApiPath::fixed(LIST));
            Ok(Some((read_records(&call, CONTACT, Some(raw)), next)))
        })
    }

    /// [`GhlClient::list_contact_pages`] for callers that need every
    /// contact: a page with an unreadable one fails, naming it.
    pub fn list_contacts(
        &self,
        limit: u32,
    ) -> impl Stream<Item = Result<Vec<Contact>, GhlError>> + '_ {
        self.list_contact_pages(limit)
            .map(|page| page.and_then(Listing::strict))
    }

    /// `GET /contacts/business/:businessId`: `skip`/`limit` paging;
    /// contacts that cannot be read are set aside in each page's
    /// [`Listing::unreadable`].
    pub fn list_business_contact_pages<'a>(
        &'a self,
        business_id: &'a str,
        limit: u32,
    ) -> impl Stream<Item = Result<Listing<Contact>, GhlError>> + 'a {
        let limit = limit.clamp(1, LIST_LIMIT_MAX);
        let path = ApiPath::fill("/contacts/business/:businessId", &[business_id]);
        stream::try_unfold(Some(0u32), move |skip| {
            let path = path.clone();
            async move {
                let Some(skip) = skip else {
                    return Ok(None);
                };
                let call = self.call(&Method::GET, &path);
                let request = Request::get(path)
                    .query("locationId", self.location_id())
                    .query("limit", limit.to_string())
                    .query("skip", skip.to_string());
                let page: SearchPage = self.execute(&request).await?;
                let raw = page.contacts.unwrap_or_default();
                let next = (raw.len() as u32 >= limit).then_some(skip + limit);
                Ok(Some((read_records(&call, CONTACT, Some(raw)), next)))
            }
        })
    }

    /// [`GhlClient::list_business_contact_pages`] for callers that need
    /// every contact: a page with an unreadable one fails, naming it.
    pub fn list_business_contacts<'a>(
        &'a self,
        business_id: &'a str,
        limit: u32,
    ) -> impl Stream<Item = Result<Vec<Contact>, GhlError>> + 'a {
        self.list_business_contact_pages(business_id, limit)
            .map(|page| page.and_then(Listing::strict))
    }
}
