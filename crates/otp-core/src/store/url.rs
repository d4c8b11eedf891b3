//! Which database a URL names, and the files of a SQLite database.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::Error;

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file, created on first use.
    Sqlite(PathBuf),
    /// A PostgreSQL server.
    Postgres(String),
}

impl FromStr for DatabaseUrl {
    type Err = Error;

    /// Accepts `sqlite://PATH`, `sqlite:PATH` and `postgres://…` / `postgresql://…`.
    fn from_str(url: &str) -> Result<Self, Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or(Error::InvalidDatabaseUrl(
                "expected sqlite://PATH or postgres://USER@HOST/DATABASE",
            ))?;
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(Error::InvalidDatabaseUrl(
                "a SQLite URL needs a file path (an in-memory database would lose every device)",
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

impl DatabaseUrl {
    /// Where the embedded default keeps its key file: beside the SQLite database, named after
    /// it with `.key` appended. PostgreSQL has no such place.
    pub fn default_key_file(&self) -> Option<PathBuf> {
        match self {
            Self::Sqlite(path) => {
                let mut name = path.file_name()?.to_owned();
                name.push(".key");
                Some(path.with_file_name(name))
            }
            Self::Postgres(_) => None,
        }
    }

    /// The files of this database that hold what must stay private: for SQLite the database,
    /// its `-wal` and `-shm` files and the default key file; nothing for PostgreSQL (its server
    /// keeps its files).
    pub fn private_files(&self) -> Vec<PathBuf> {
        match self {
            Self::Sqlite(path) => {
                let beside = |suffix: &str| {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    PathBuf::from(name)
                };
                let mut files = vec![path.clone(), beside("-wal"), beside("-shm")];
                files.extend(self.default_key_file());
                files
            }
            Self::Postgres(_) => Vec::new(),
        }
    }
}

/// Those of `files` that exist and that users other than their owner may read or write (Unix
/// permissions); empty elsewhere. A server warns of them at start.
pub fn files_open_to_others(files: &[PathBuf]) -> Vec<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        files
            .iter()
            .filter(|path| {
                std::fs::metadata(path).is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0)
            })
            .cloned()
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = files;
        Vec::new()
    }
}

/// Creates the SQLite file at `path` with mode 0600 if it is not there yet. SQLite then gives
/// its `-wal` and `-shm` files the same mode, so no other local user can read the database
/// whatever the process's umask.
pub(super) fn create_private_file(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // A file that exists is left as it is; a missing folder and the like are reported by
    // SQLite's own open, which names them better.
    let _ = options.open(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_checked() {
        assert_eq!(
            "sqlite://otp.db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Sqlite("otp.db".into())
        );
        assert_eq!(
            "sqlite:/var/lib/otp/otp.db?mode=rwc"
                .parse::<DatabaseUrl>()
                .unwrap(),
            DatabaseUrl::Sqlite("/var/lib/otp/otp.db".into())
        );
        assert!(matches!(
            "postgresql://postgres@127.0.0.1/otp"
                .parse::<DatabaseUrl>()
                .unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        for bad in ["", "mysql://x", "otp.db", "sqlite://", "sqlite::memory:"] {
            assert!(
                matches!(
                    bad.parse::<DatabaseUrl>(),
                    Err(Error::InvalidDatabaseUrl(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_key_file_lives_beside_the_sqlite_database() {
        let url: DatabaseUrl = "sqlite:///var/lib/otp/otp.db".parse().unwrap();
        assert_eq!(
            url.default_key_file(),
            Some(PathBuf::from("/var/lib/otp/otp.db.key"))
        );
        let url: DatabaseUrl = "postgres://postgres@127.0.0.1/otp".parse().unwrap();
        assert_eq!(url.default_key_file(), None);
    }
}
