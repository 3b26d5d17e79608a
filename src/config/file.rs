//! The TOML file: its layout over the settings sections, and the few values whose TOML form needs
//! a hand (board ids, conflict policies).
//!
//! Owns: `SettingsFile` (the tables of the file, each one section or, for `[gateway]`, four) and
//! the error text of a file that does not load: "line N: key.path: message", never the offending
//! line itself (it may hold a secret). Every key is optional; unknown keys are refused.
//! May import: std, serde, serde_path_to_error, toml, humantime, crate::config, crate::domain.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{Deserializer, Error as _, IgnoredAny};

use super::{
    AdminSettings, BackfillSettings, ConfigError, ConflictSettings, ConsoleSettings,
    DatabaseSettings, DriftSettings, HttpSettings, LogSettings, MappingSettings, MondaySettings,
    NpdSettings, RetentionSettings, Settings, SyncSettings,
};
use crate::domain::entity::BoardId;
use crate::domain::reconcile::ConflictPolicy;

/// The tables of the file. A missing table leaves its section at its defaults.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct SettingsFile {
    gateway: GatewayTable,
    npd: NpdSettings,
    monday: MondaySettings,
    mapping: MappingSettings,
    conflicts: ConflictSettings,
    sync: SyncSettings,
    retention: RetentionSettings,
    backfill: BackfillSettings,
    drift: DriftSettings,
    console: ConsoleSettings,
}

/// `[gateway]`: the keys of four sections in one table. A flattened section cannot refuse keys
/// (it sees its siblings' keys too), so whatever none of them takes is refused by `unknown`.
#[derive(Default, Deserialize)]
struct GatewayTable {
    #[serde(flatten, deserialize_with = "naming_the_key")]
    http: HttpSettings,
    #[serde(flatten, deserialize_with = "naming_the_key")]
    database: DatabaseSettings,
    #[serde(flatten, deserialize_with = "naming_the_key")]
    admin: AdminSettings,
    #[serde(flatten, deserialize_with = "naming_the_key")]
    log: LogSettings,
    /// Declared last: serde hands it only the keys the sections above left.
    #[serde(flatten)]
    unknown: NoOtherKeys,
}

impl From<SettingsFile> for Settings {
    fn from(f: SettingsFile) -> Settings {
        let GatewayTable {
            http,
            database,
            admin,
            log,
            unknown: NoOtherKeys,
        } = f.gateway;
        Settings {
            http,
            database,
            admin,
            log,
            npd: f.npd,
            monday: f.monday,
            mapping: f.mapping.with_shared_keys(),
            conflicts: f.conflicts,
            sync: f.sync,
            retention: f.retention,
            backfill: f.backfill,
            drift: f.drift,
            console: f.console,
        }
    }
}

/// Refuses any key at all: what is left of `[gateway]` once its sections took theirs.
#[derive(Default)]
struct NoOtherKeys;

impl<'de> Deserialize<'de> for NoOtherKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rest = BTreeMap::<String, IgnoredAny>::deserialize(d)?;
        match rest.keys().next() {
            None => Ok(NoOtherKeys),
            Some(key) => Err(D::Error::custom(format!(
                "unknown field `{key}` (fixtures/gateway.example.toml lists every key)"
            ))),
        }
    }
}

/// Deserializes a flattened section with the key of a bad value in the error: flattening hides the
/// key from the path of the file's error (which stops at `gateway`).
fn naming_the_key<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    serde_path_to_error::deserialize(d).map_err(|e| {
        let key = e.path().to_string();
        // A nested error carries no source text, so its `Display` is its message (plus a newline).
        let message = e.into_inner().to_string();
        D::Error::custom(format!("{key}: {}", message.trim_end()))
    })
}

/// Reads and parses the file at `path`.
pub(super) fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_path_to_error::deserialize(toml::Deserializer::new(&text)).map_err(|e| {
        ConfigError::Parse {
            path: path.to_owned(),
            message: describe(&text, &e),
        }
    })
}

/// "line N: key.path: message", without quoting the offending line (it may hold a secret).
fn describe(text: &str, e: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let mut out = String::new();
    if let Some(span) = e.inner().span() {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        out.push_str(&format!("line {line}: "));
    }
    if e.path().iter().next().is_some() {
        out.push_str(&format!("{}: ", e.path()));
    }
    out.push_str(e.inner().message());
    out
}

/// A value read as a string and parsed with its `FromStr`, whose error says what is wrong.
struct Parsed<T>(T);

impl<'de, T: FromStr<Err: Display>> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Parsed).map_err(D::Error::custom)
    }
}

/// `"30d"`, `"1h"`, `"250ms"`: a duration as humans write it.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        D::Error::custom(format!(
            "`{text}` is not a duration ({e}; write it like \"30s\", \"15m\" or \"1h\")"
        ))
    })
}

/// `default = "npd_wins"`: a conflict policy by its name.
pub(super) fn policy<'de, D: Deserializer<'de>>(d: D) -> Result<ConflictPolicy, D::Error> {
    Parsed::deserialize(d).map(|Parsed(p)| p)
}

/// `[conflicts.contacts]`: field name = policy name.
pub(super) fn policies<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, ConflictPolicy>, D::Error> {
    let table = BTreeMap::<String, Parsed<ConflictPolicy>>::deserialize(d)?;
    Ok(table.into_iter().map(|(k, Parsed(p))| (k, p)).collect())
}

/// A value by its name, parsed with its `FromStr`.
pub(super) fn parsed<'de, D: Deserializer<'de>, T: FromStr<Err: Display>>(
    d: D,
) -> Result<T, D::Error> {
    Parsed::deserialize(d).map(|Parsed(v)| v)
}

/// A board id as a TOML integer or a string of digits; it must be positive.
pub(super) fn board_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BoardId>, D::Error> {
    match BoardId::deserialize(d)? {
        BoardId(0) => Err(D::Error::custom("must be a positive board id")),
        board => Ok(Some(board)),
    }
}
