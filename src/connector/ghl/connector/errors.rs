//! GHL's errors as the connector errors the engine acts on: a missing
//! scope is unsupported, a spent budget or a 429 is the side being
//! unavailable for a while, a refused token is an auth problem, and what
//! only one record can cause is that record's error.

use chrono::Utc;

use super::GhlConnector;
use crate::connector::ghl::error::GhlError;
use crate::connector::ConnectorError;
use crate::domain::EntityKind;

impl GhlConnector {
    pub(super) fn error(
        &self,
        entity: EntityKind,
        id: Option<&str>,
        error: GhlError,
    ) -> ConnectorError {
        let side = self.side.clone();
        match error {
            GhlError::ScopeMissing { scope, .. } => ConnectorError::Unsupported {
                side,
                entity,
                operation: "write",
                reason: format!("the credentials lack the `{scope}` scope"),
            },
            GhlError::Budget { source, .. } => ConnectorError::Unavailable {
                side,
                message: source.to_string(),
                retry_after: (source.resumes_at - Utc::now()).to_std().ok(),
            },
            GhlError::RateLimited { retry_after, .. } => ConnectorError::Unavailable {
                side,
                message: error.to_string(),
                retry_after,
            },
            GhlError::Unauthorized { .. }
            | GhlError::TokenExpired { .. }
            | GhlError::Forbidden { .. }
            | GhlError::Auth { .. } => ConnectorError::Auth {
                side,
                message: error.to_string(),
            },
            error if error.is_duplicate() => ConnectorError::Duplicate {
                side,
                entity,
                // GHL's refusal names no contact (`BadRequestDTO` is
                // `{statusCode, message}`): the engine looks it up.
                existing_id: None,
                message: error.to_string(),
            },
            error if error.is_record_error() => ConnectorError::Record {
                side,
                entity,
                id: id.map(str::to_owned),
                message: error.to_string(),
            },
            error => ConnectorError::Unavailable {
                side,
                message: error.to_string(),
                retry_after: None,
            },
        }
    }

    pub(super) fn unsupported(
        &self,
        entity: EntityKind,
        operation: &'static str,
    ) -> ConnectorError {
        ConnectorError::Unsupported {
            side: self.side.clone(),
            entity,
            operation,
            reason: match entity {
                EntityKind::Appointment => {
                    "appointments are read-only through the Contacts API".into()
                }
                _ => "this side cannot do that".into(),
            },
        }
    }

    pub(super) fn parent<'a>(
        &self,
        entity: EntityKind,
        parent_id: Option<&'a str>,
    ) -> Result<&'a str, ConnectorError> {
        parent_id.ok_or_else(|| ConnectorError::Record {
            side: self.side.clone(),
            entity,
            id: None,
            message: "a task, note or appointment needs its contact's id".into(),
        })
    }
}
