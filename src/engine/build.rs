//! From configuration to a running engine: connect both sides of every
//! pair, register the pairs in the mirror, and check that each field map
//! asks only for what its sides can do.

use crate::domain::Side;
use std::sync::Arc;

use tokio::sync::Notify;

use super::{Engine, PairRuntime};
use crate::config::{Settings, SideKind};
use crate::connector::ghl::{self, AuthError, GhlConnector, LimiterRegistry};
use crate::connector::http::api_client;
use crate::connector::rest::{self, RestConnector};
use crate::connector::Connector;
use crate::store::{PairRegistration, PairSide, Store, StoreError};

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("side `{side}`: {source}")]
    GhlAuth { side: String, source: AuthError },
    #[error(transparent)]
    Rest(#[from] rest::BuildError),
    #[error("side `{side}`: cannot set up HTTP: {source}")]
    Http {
        side: String,
        source: reqwest::Error,
    },
    #[error("pair `{pair}` names side `{side}`, which is not configured")]
    UnknownSide { pair: String, side: String },
    /// A field map asks a side for something it cannot do.
    #[error("pair `{pair}`, {entity} field `{field}`: {message}")]
    Map {
        pair: String,
        entity: crate::domain::EntityKind,
        field: String,
        message: String,
    },
}

/// Connects every configured pair. OAuth sides need their tokens in the
/// store (`ghlsync auth login`).
pub async fn build(settings: &Settings, store: Store) -> Result<Engine, BuildError> {
    let limiters = LimiterRegistry::new();
    let mut pairs = Vec::new();
    for pair in settings.pairs.values() {
        let ghl = connect(settings, &pair.name, &pair.ghl, &store, &limiters).await?;
        let app = connect(settings, &pair.name, &pair.app, &store, &limiters).await?;
        store
            .register_pair(&PairRegistration {
                name: pair.name.clone(),
                a: registration(settings, &pair.ghl),
                b: registration(settings, &pair.app),
            })
            .await?;
        let runtime = PairRuntime::new(pair.clone(), ghl, app);
        check_map(&runtime)?;
        pairs.push(Arc::new(runtime));
    }
    Ok(Engine {
        store,
        pairs,
        sync: settings.sync.clone(),
        wake: Arc::new(Notify::new()),
        records_read: Arc::default(),
    })
}

async fn connect(
    settings: &Settings,
    pair: &str,
    name: &str,
    store: &Store,
    limiters: &LimiterRegistry,
) -> Result<Arc<dyn Connector>, BuildError> {
    let side = settings
        .sides
        .get(name)
        .ok_or_else(|| BuildError::UnknownSide {
            pair: pair.to_owned(),
            side: name.to_owned(),
        })?;
    Ok(match &side.kind {
        SideKind::Ghl(config) => {
            let http = api_client(config.timeout).map_err(|source| BuildError::Http {
                side: name.to_owned(),
                source,
            })?;
            let client = ghl::build::connect(name, config, store, limiters, http)
                .await
                .map_err(|source| BuildError::GhlAuth {
                    side: name.to_owned(),
                    source,
                })?;
            Arc::new(GhlConnector::new(name, client))
        }
        SideKind::Rest(config) => Arc::new(RestConnector::build(name, config)?),
    })
}

fn registration(settings: &Settings, name: &str) -> PairSide {
    let kind = settings.sides.get(name).map(|s| &s.kind);
    PairSide {
        side: name.to_owned(),
        kind: kind.map_or("unknown", |k| k.name()).to_owned(),
        location: match kind {
            Some(SideKind::Ghl(ghl)) => Some(ghl.location_id.clone()),
            _ => None,
        },
    }
}

/// Every mapped entity must be readable on each side it flows from; a
/// field that flows to a side that cannot write that entity at all is an
/// error too (a read-only *scope* is not: the pair then runs one-way, as
/// `check-config` warns).
fn check_map(pair: &PairRuntime) -> Result<(), BuildError> {
    for field in &pair.settings.map.fields {
        for role in Side::BOTH {
            let connector = pair.connector(role);
            let caps = connector.capabilities().of(field.entity);
            let error = |message: String| BuildError::Map {
                pair: pair.name().to_owned(),
                entity: field.entity,
                field: field.name.clone(),
                message,
            };
            if field.flow.reads_from(role) && field.binding(role).is_some() && !caps.read {
                return Err(error(format!(
                    "side `{}` cannot read {}s (configure them on that side, or set flow so the field does not come from it)",
                    connector.side(),
                    field.entity
                )));
            }
            let read_only_scope = matches!(
                connector.capabilities().of(crate::domain::EntityKind::Contact),
                c if c.read && !c.writable()
            );
            if field.flow.writes_to(role)
                && field.binding(role).is_some()
                && !caps.writable()
                && !read_only_scope
                && field.flow.reads_from(role.other())
            {
                return Err(error(format!(
                    "side `{}` cannot write {}s; set flow = \"to_{}\" for this field",
                    connector.side(),
                    field.entity,
                    role.other().name()
                )));
            }
        }
    }
    Ok(())
}
