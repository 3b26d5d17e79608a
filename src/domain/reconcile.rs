//! Conflict policies of the field-level three-way merge.
//!
//! Owns: `ConflictPolicy` (how a field is settled when both sides changed it to different values).
//! May import: std, serde.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a field is settled when NPD and Monday both changed it, to different values, since the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// NPD's value wins and is pushed to Monday.
    NpdWins,
    /// Monday's value wins and is pushed to NPD.
    MondayWins,
    /// The newer change wins: NPD `updated_at` against Monday `changedAt`; a tie goes to NPD.
    LatestWins,
    /// Neither side is written for that field; a conflict opens for an admin to settle.
    Manual,
}

impl ConflictPolicy {
    pub const ALL: [ConflictPolicy; 4] = [
        ConflictPolicy::NpdWins,
        ConflictPolicy::MondayWins,
        ConflictPolicy::LatestWins,
        ConflictPolicy::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::NpdWins => "npd_wins",
            ConflictPolicy::MondayWins => "monday_wins",
            ConflictPolicy::LatestWins => "latest_wins",
            ConflictPolicy::Manual => "manual",
        }
    }
}

impl fmt::Display for ConflictPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConflictPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConflictPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown conflict policy `{s}` (expected npd_wins, monday_wins, latest_wins or manual)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_by_name_and_refuse_others() {
        for p in ConflictPolicy::ALL {
            assert_eq!(p.as_str().parse::<ConflictPolicy>(), Ok(p));
        }
        assert!("newest_wins".parse::<ConflictPolicy>().is_err());
    }
}
