//! The directories a SQLite mirror needs: planned before anything is
//! created, so `check-config` can say what `migrate` and the daemon will
//! create, and refuse a parent that cannot be created as this user, before
//! a deploy rather than at the daemon's first start.

use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use secrecy::ExposeSecret;
use sqlx::sqlite::SqliteConnectOptions;

use super::error::{Result, StoreError};
use crate::config::database::{Backend, DatabaseSettings};

/// The directories [`super::Store::connect`] would create for the
/// settings' SQLite file, outermost first: empty for Postgres, for an
/// in-memory database, and when the file's directory exists.
///
/// Touches nothing but a probe: when directories are missing, an empty
/// directory is created in (and removed from) the nearest existing
/// ancestor, since only trying says whether this user may create one there
/// (ownership, ACLs, a read-only mount; root passes every mode check).
pub fn sqlite_dirs_to_create(settings: &DatabaseSettings) -> Result<Vec<PathBuf>> {
    if settings.backend != Backend::Sqlite {
        return Ok(Vec::new());
    }
    let options = SqliteConnectOptions::from_str(settings.url.expose_secret()).map_err(|e| {
        StoreError::Connect {
            backend: Backend::Sqlite.as_str(),
            url: settings.redacted_url(),
            reason: e.to_string(),
        }
    })?;
    dirs_to_create(options.get_filename())
}

/// The missing directories above the SQLite file `file`, outermost first,
/// or why the outermost of them cannot be created.
pub(super) fn dirs_to_create(file: &Path) -> Result<Vec<PathBuf>> {
    let text = file.to_string_lossy();
    if text.is_empty() || text == ":memory:" || text.starts_with("file:") {
        return Ok(Vec::new());
    }
    let Some(parent) = file.parent() else {
        return Ok(Vec::new());
    };
    let mut missing: Vec<PathBuf> = Vec::new();
    for dir in parent.ancestors() {
        // A relative path's last ancestor is "": the working directory.
        let existing = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        match std::fs::metadata(existing) {
            Ok(meta) if meta.is_dir() => {
                if let Some(outermost) = missing.last() {
                    probe(existing, outermost)?;
                }
                missing.reverse();
                return Ok(missing);
            }
            Ok(_) => {
                let refused = missing.last().cloned().unwrap_or_else(|| dir.to_path_buf());
                return Err(cannot_create(
                    refused,
                    io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{} exists and is not a directory", existing.display()),
                    ),
                ));
            }
            // Below a file, a path is "not a directory": look further up
            // for the file itself.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                missing.push(dir.to_path_buf())
            }
            Err(e) => {
                let why = format!("cannot inspect {}: {e}", existing.display());
                return Err(cannot_create(
                    dir.to_path_buf(),
                    io::Error::new(e.kind(), why),
                ));
            }
        }
    }
    Ok(Vec::new())
}

/// Whether this user may create `outermost` inside `existing`: creates and
/// removes an empty directory there.
fn probe(existing: &Path, outermost: &Path) -> Result<()> {
    tempfile::Builder::new()
        .prefix(".ghlsync-probe-")
        .tempdir_in(existing)
        .map(drop)
        .map_err(|e| {
            let why = format!(
                "this user may not create a directory in {}: {e}",
                existing.display()
            );
            cannot_create(outermost.to_path_buf(), io::Error::new(e.kind(), why))
        })
}

fn cannot_create(path: PathBuf, source: io::Error) -> StoreError {
    StoreError::CreateDir { path, source }
}

/// Creates the directories of the SQLite file `file` that are missing,
/// saying which: an operator should find a new directory tree in the log,
/// not by surprise.
pub(super) fn ensure_parent_dir(file: &Path) -> Result<()> {
    let missing = dirs_to_create(file)?;
    let Some(innermost) = missing.last() else {
        return Ok(());
    };
    std::fs::create_dir_all(innermost).map_err(|source| StoreError::CreateDir {
        path: innermost.clone(),
        source,
    })?;
    for dir in &missing {
        tracing::info!(directory = %dir.display(), "created a directory for the SQLite mirror database");
    }
    Ok(())
}
