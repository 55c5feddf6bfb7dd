//! The GoHighLevel side: a typed client of the Contacts API v2 with OAuth
//! and Private Integration Token authentication, a pacing rate limiter,
//! retries, and pagination as streams.

// `GhlError` names the call it belongs to, which makes it larger than
// clippy likes in a `Result`. Errors are the slow path here (a network call
// just failed), so the clarity of plain variants wins over boxing them.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod build;
pub mod client;
pub mod connector;
pub mod endpoints;
pub mod error;
pub mod limiter;
pub mod models;
pub mod oauth;
pub mod pages;
mod reading;
pub mod settings;
pub mod task_search;
pub mod times;
pub mod tokens;
pub mod webhook;

pub use auth::{AuthError, Credentials, OAuthSession, TokenSource};
pub use client::{ClientOptions, GhlClient};
pub use connector::{GhlConnector, TaskReads};
pub use endpoints::Deleted;
pub use error::{Call, GhlError};
pub use limiter::{
    Access, BudgetExhausted, Headroom, LimiterRegistry, PerPurpose, RateLimiter, RateLimits, Usage,
    PURPOSES,
};
pub use models::{
    Appointment, Contact, ContactFields, Note, NoteFields, SearchFilter, SearchQuery, SearchSort,
    Task, TaskFields, Upserted,
};
pub use oauth::{OAuthApp, OAuthError, TokenGrant};
pub use settings::{GhlAuth, GhlSide, OAuthInstall};
pub use tokens::{StoredToken, TokenStore, TokenStoreError};
