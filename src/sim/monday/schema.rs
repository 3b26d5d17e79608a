//! The GraphQL schemas Monday documents are checked against.
//!
//! Owns: the bundled subset SDL (`src/sim/monday_subset.graphql`, parsed once) and, when the
//! project sits beside `../shared/monday/schema.graphql` (monday's own 2026-10 SDL, not shipped
//! with the project), that schema too, parsed once. `validate_document` is what the simulator runs
//! on every request and what the client's tests run on every document the gateway sends.
//! May import: std, apollo-compiler, tracing.

use std::sync::OnceLock;

use apollo_compiler::validation::{DiagnosticList, Valid};
use apollo_compiler::{ExecutableDocument, Schema, ast};

/// The subset SDL, compiled into the binary.
const SUBSET_SDL: &str = include_str!("../monday_subset.graphql");

/// monday's full SDL, when the project is checked out beside the shared research folder.
const SHARED_SCHEMA_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/monday/schema.graphql"
);

/// Validates an executable GraphQL document against the subset SDL, and also against
/// `../shared/monday/schema.graphql` (path relative to CARGO_MANIFEST_DIR) when that file exists.
/// Err carries the validation messages, one per line.
pub fn validate_document(document: &str) -> Result<(), String> {
    check_document(document)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Whether monday's full SDL was found (and is valid), so that documents are also checked against it.
pub fn shared_schema_available() -> bool {
    shared_schema().is_some()
}

/// The bundled subset schema.
pub(crate) fn subset_schema() -> &'static Valid<Schema> {
    static SUBSET: OnceLock<Valid<Schema>> = OnceLock::new();
    SUBSET.get_or_init(
        || match Schema::parse_and_validate(SUBSET_SDL, "monday_subset.graphql") {
            Ok(schema) => schema,
            // The SDL is a compiled-in constant; a test checks that it is valid.
            Err(e) => panic!("the bundled Monday subset SDL is invalid: {}", e.errors),
        },
    )
}

/// monday's own SDL, when present and valid.
pub(crate) fn shared_schema() -> Option<&'static Valid<Schema>> {
    static SHARED: OnceLock<Option<Valid<Schema>>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let sdl = std::fs::read_to_string(SHARED_SCHEMA_PATH).ok()?;
            match Schema::parse_and_validate(sdl, "schema.graphql") {
                Ok(schema) => Some(schema),
                Err(e) => {
                    tracing::warn!(
                        path = SHARED_SCHEMA_PATH,
                        errors = e.errors.len(),
                        "monday's schema.graphql does not validate; checking documents against the subset only"
                    );
                    None
                }
            }
        })
        .as_ref()
}

/// One problem found in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub message: String,
    /// (line, column), 1-based.
    pub location: Option<(usize, usize)>,
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DocumentError {
    /// Not a syntactically valid GraphQL document.
    Parse(Vec<Problem>),
    /// Well-formed, but not valid against a schema.
    Invalid(Vec<Problem>),
}

impl DocumentError {
    pub(crate) fn problems(&self) -> &[Problem] {
        match self {
            DocumentError::Parse(p) | DocumentError::Invalid(p) => p,
        }
    }
}

impl std::fmt::Display for DocumentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self
            .problems()
            .iter()
            .map(|p| match p.location {
                Some((line, column)) => format!("{}:{}: {}", line, column, p.message),
                None => p.message.clone(),
            })
            .collect();
        f.write_str(&lines.join("\n"))
    }
}

fn problems(errors: &DiagnosticList, prefix: &str) -> Vec<Problem> {
    errors
        .iter()
        .map(|d| {
            let json = d.to_json();
            Problem {
                message: format!("{prefix}{}", json.message),
                location: json.locations.first().map(|l| (l.line, l.column)),
            }
        })
        .collect()
}

/// Parses `document` and validates it against the subset (and monday's SDL when present); the
/// result is the document typed against the subset, ready to execute.
pub(crate) fn check_document(document: &str) -> Result<Valid<ExecutableDocument>, DocumentError> {
    let ast = match ast::Document::parse(document, "query.graphql") {
        Ok(ast) => ast,
        Err(e) => {
            let problems = e
                .errors
                .iter()
                .map(|d| {
                    let json = d.to_json();
                    let location = json.locations.first().map(|l| (l.line, l.column));
                    let message = match location {
                        Some((line, column)) => {
                            format!(
                                "Parse error on line {line} column {column}: {}",
                                json.message
                            )
                        }
                        None => format!("Parse error: {}", json.message),
                    };
                    Problem { message, location }
                })
                .collect();
            return Err(DocumentError::Parse(problems));
        }
    };
    let executable = ast
        .to_executable_validate(subset_schema())
        .map_err(|e| DocumentError::Invalid(problems(&e.errors, "")))?;
    if let Some(shared) = shared_schema() {
        ast.to_executable_validate(shared).map_err(|e| {
            DocumentError::Invalid(problems(&e.errors, "against monday's schema.graphql: "))
        })?;
    }
    Ok(executable)
}

/// The name of the first top-level field of the document's first operation, if it parses at all.
pub(crate) fn first_field_name(document: &str) -> Option<String> {
    field_names(document).into_iter().next()
}

/// The top-level field names of the document's first operation, in order (a batch of aliased
/// mutations names each of its mutations).
pub(crate) fn field_names(document: &str) -> Vec<String> {
    let Ok(ast) = ast::Document::parse(document, "query.graphql") else {
        return Vec::new();
    };
    ast.definitions
        .iter()
        .find_map(|def| match def {
            ast::Definition::OperationDefinition(op) => Some(
                op.selection_set
                    .iter()
                    .filter_map(|sel| match sel {
                        ast::Selection::Field(f) => Some(f.name.to_string()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}
