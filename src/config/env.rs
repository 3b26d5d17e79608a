//! The environment overlay: the variables of CONTRACT.md, each mapped to its setting here and
//! nowhere else. A variable that is set (and not blank) overrides the file and the default.
//!
//! Owns: `overlay`. A value that does not parse is reported with the variable's name and left out.
//! May import: std, secrecy, crate::config, crate::domain.

use std::net::SocketAddr;

use secrecy::SecretString;

use super::{LogFormat, Settings};
use crate::domain::entity::BoardId;

/// Overlays the environment that `lookup` reads on `s`; returns the values that did not parse.
pub(super) fn overlay(s: &mut Settings, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut env = Env {
        lookup,
        problems: Vec::new(),
    };
    env.parse("GATEWAY_LISTEN", &mut s.http.listen, listen);
    replace(&mut s.database.url, env.secret("GATEWAY_DATABASE_URL"));
    set(&mut s.http.public_url, env.text("GATEWAY_PUBLIC_URL"));
    set(&mut s.admin.token, env.secret("GATEWAY_ADMIN_TOKEN"));
    replace(&mut s.log.filter, env.text("GATEWAY_LOG"));
    env.parse(
        "GATEWAY_LOG_FORMAT",
        &mut s.log.format,
        str::parse::<LogFormat>,
    );

    set(&mut s.npd.webhook_secret, env.secret("NPD_WEBHOOK_SECRET"));
    set(&mut s.npd.api_url, env.text("NPD_API_URL"));
    set(&mut s.npd.api_token, env.secret("NPD_API_TOKEN"));

    let m = &mut s.monday;
    replace(&mut m.api_url, env.text("MONDAY_API_URL"));
    set(&mut m.api_token, env.secret("MONDAY_API_TOKEN"));
    replace(&mut m.api_version, env.text("MONDAY_API_VERSION"));
    set(&mut m.signing_secret, env.secret("MONDAY_SIGNING_SECRET"));
    set(&mut m.webhook_token, env.secret("MONDAY_WEBHOOK_TOKEN"));
    env.parse("MONDAY_CONTACTS_BOARD_ID", &mut m.contacts_board_id, board);
    env.parse(
        "MONDAY_ORGANIZATIONS_BOARD_ID",
        &mut m.organizations_board_id,
        board,
    );
    env.problems
}

struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Env<'_> {
    /// The variable's value; an empty or blank variable counts as unset.
    fn text(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    fn secret(&self, name: &str) -> Option<SecretString> {
        self.text(name).map(SecretString::from)
    }

    /// Sets `slot` to the parsed value, or records why the value is refused ("NAME `v` is …").
    fn parse<T>(&mut self, name: &str, slot: &mut T, parse: impl Fn(&str) -> Result<T, String>) {
        if let Some(value) = self.text(name) {
            match parse(&value) {
                Ok(v) => *slot = v,
                Err(why) => self.problems.push(format!("{name} {why}")),
            }
        }
    }
}

fn replace<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

fn listen(value: &str) -> Result<SocketAddr, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a valid value"))
}

fn board(value: &str) -> Result<Option<BoardId>, String> {
    match value.parse::<BoardId>() {
        Ok(board) if board.0 > 0 => Ok(Some(board)),
        _ => Err(format!("`{value}` is not a board id (a positive number)")),
    }
}
