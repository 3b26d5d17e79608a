//! Every GraphQL document the gateway sends to monday, by name.
//!
//! Owns: the documents only (their variables are built by the client), `batch`, the one document
//! built per request (several mutations as aliases), and `root_field`, which names a document in
//! metrics. Each one is validated by the tests against the simulator's subset SDL and, when
//! present, monday's own SDL.
//! May import: std.

/// Creates an item with all mapped column values (`$column_values`: a JSON-encoded string).
pub const CREATE_ITEM: &str = r#"mutation CreateItem($board_id: ID!, $item_name: String!, $column_values: JSON) {
  create_item(board_id: $board_id, item_name: $item_name, column_values: $column_values) {
    id
  }
}"#;

/// Writes several columns (and, with the key "name", the item name) in one mutation.
pub const CHANGE_MULTIPLE_COLUMN_VALUES: &str = r#"mutation ChangeMultipleColumnValues($board_id: ID!, $item_id: ID!, $column_values: JSON!) {
  change_multiple_column_values(board_id: $board_id, item_id: $item_id, column_values: $column_values) {
    id
  }
}"#;

/// Archives an item.
pub const ARCHIVE_ITEM: &str = r#"mutation ArchiveItem($item_id: ID!) {
  archive_item(item_id: $item_id) {
    id
    state
  }
}"#;

/// The items of a board whose column `$column_id` holds `$value` (first page of 25).
pub const ITEMS_BY_COLUMN_VALUE: &str = r#"query ItemsByColumnValue($board_id: ID!, $column_id: String!, $value: String!) {
  items_page_by_column_values(board_id: $board_id, limit: 25, columns: [{column_id: $column_id, column_values: [$value]}]) {
    cursor
    items {
      id
      state
    }
  }
}"#;

/// The items of a board whose column `$column_id` holds one of `$values` (ORed), with that
/// column's text: the lookup of many creates' npd_ids in one request.
pub const ITEMS_BY_COLUMN_VALUES: &str = r#"query ItemsByColumnValues($board_id: ID!, $column_id: String!, $values: [String]!) {
  items_page_by_column_values(board_id: $board_id, limit: 500, columns: [{column_id: $column_id, column_values: $values}]) {
    cursor
    items {
      id
      state
      column_values(ids: [$column_id]) {
        id
        text
      }
    }
  }
}"#;

/// The next page of a lookup by column values.
pub const ITEMS_BY_COLUMN_VALUES_NEXT: &str = r#"query ItemsByColumnValuesNext($board_id: ID!, $cursor: String!, $column_id: String!) {
  items_page_by_column_values(board_id: $board_id, limit: 500, cursor: $cursor) {
    cursor
    items {
      id
      state
      column_values(ids: [$column_id]) {
        id
        text
      }
    }
  }
}"#;

/// `document` with `create_labels_if_missing: true` on the mutation whose column values are
/// `$variable` (`column_values`, or `c3` in a batch): only for a field with `create_labels`.
pub fn creating_labels(document: &str, variable: &str) -> String {
    document.replace(
        &format!("column_values: ${variable})"),
        &format!("column_values: ${variable}, create_labels_if_missing: true)"),
    )
}

/// A mutation of a batch, by kind (its variables are `$b{i}`, `$n{i}`, `$i{i}`, `$c{i}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    Create,
    Update,
    Archive,
}

/// One request carrying `kinds` as aliases `m0`, `m1`, ..., and Monday's `complexity` answer.
pub fn batch(kinds: &[BatchKind]) -> String {
    let mut variables = Vec::new();
    let mut fields = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let (vars, field) = match kind {
            BatchKind::Create => (
                format!("$b{i}: ID!, $n{i}: String!, $c{i}: JSON"),
                format!("create_item(board_id: $b{i}, item_name: $n{i}, column_values: $c{i})"),
            ),
            BatchKind::Update => (
                format!("$b{i}: ID!, $i{i}: ID!, $c{i}: JSON!"),
                format!(
                    "change_multiple_column_values(board_id: $b{i}, item_id: $i{i}, column_values: $c{i})"
                ),
            ),
            BatchKind::Archive => (
                format!("$i{i}: ID!"),
                format!("archive_item(item_id: $i{i})"),
            ),
        };
        variables.push(vars);
        fields.push(format!("  m{i}: {field} {{\n    id\n  }}"));
    }
    format!(
        "mutation Batch({}) {{\n{}\n  complexity {{\n    after\n    reset_in_x_seconds\n  }}\n}}",
        variables.join(", "),
        fields.join("\n")
    )
}

/// One item with its name, state, board and every column value.
pub const GET_ITEM: &str = r#"query GetItem($item_id: ID!) {
  items(ids: [$item_id]) {
    id
    name
    state
    board {
      id
    }
    column_values {
      id
      type
      text
      value
      ... on BoardRelationValue {
        linked_item_ids
      }
    }
  }
}"#;

/// A board's columns (id, type, title); an empty list when the board does not exist.
pub const BOARD_COLUMNS: &str = r#"query BoardColumns($board_id: ID!) {
  boards(ids: [$board_id]) {
    id
    name
    columns {
      id
      type
      title
    }
  }
}"#;

/// A board's columns with their settings (`settings_str`: the labels of status and dropdown
/// columns), for `check-config`.
pub const BOARD_COLUMN_SETTINGS: &str = r#"query BoardColumnSettings($board_id: ID!) {
  boards(ids: [$board_id]) {
    id
    columns {
      id
      type
      settings_str
    }
  }
}"#;

/// The user the API token acts as: the `userId` Monday puts on the webhooks of the gateway's own
/// writes, which is how an echo is told from a person's edit.
pub const ME: &str = r#"query Me {
  me {
    id
  }
}"#;

/// The webhooks of a board (Monday does not say where they point).
pub const BOARD_WEBHOOKS: &str = r#"query BoardWebhooks($board_id: ID!) {
  webhooks(board_id: $board_id) {
    id
    event
    config
  }
}"#;

/// Registers a board webhook; Monday first sends the URL a challenge it must echo.
pub const CREATE_WEBHOOK: &str = r#"mutation CreateWebhook($board_id: ID!, $url: String!, $event: WebhookEventType!) {
  create_webhook(board_id: $board_id, url: $url, event: $event) {
    id
    board_id
    event
  }
}"#;

/// Creates a column with the id the mapping names.
pub const CREATE_COLUMN: &str = r#"mutation CreateColumn($board_id: ID!, $id: String!, $title: String!, $column_type: ColumnType!) {
  create_column(board_id: $board_id, id: $id, title: $title, column_type: $column_type) {
    id
    type
    title
  }
}"#;
/// What a scan reads of an item (`$columns`: the mapped columns), shared by both page documents.
macro_rules! scanned_item {
    () => {
        r#"
fragment ScannedItem on Item {
  id
  name
  state
  column_values(ids: $columns) {
    id
    type
    text
    value
    ... on BoardRelationValue {
      linked_item_ids
    }
  }
}"#
    };
}

/// The first page of a board's items (up to `$limit`, at most 500) with only the columns named
/// in `$columns`; `cursor` continues with `NEXT_ITEMS_PAGE` (valid 60 minutes).
pub const BOARD_ITEMS_PAGE: &str = concat!(
    r#"query BoardItemsPage($board_id: ID!, $limit: Int!, $columns: [String!]) {
  boards(ids: [$board_id]) {
    id
    items_page(limit: $limit) {
      cursor
      items {
        ...ScannedItem
      }
    }
  }
}
"#,
    scanned_item!()
);

/// The next page of a walk begun with `BOARD_ITEMS_PAGE`.
pub const NEXT_ITEMS_PAGE: &str = concat!(
    r#"query NextItemsPage($cursor: String!, $limit: Int!, $columns: [String!]) {
  next_items_page(cursor: $cursor, limit: $limit) {
    cursor
    items {
      ...ScannedItem
    }
  }
}
"#,
    scanned_item!()
);

/// (name, document) of every document above.
pub const ALL: &[(&str, &str)] = &[
    ("CREATE_ITEM", CREATE_ITEM),
    (
        "CHANGE_MULTIPLE_COLUMN_VALUES",
        CHANGE_MULTIPLE_COLUMN_VALUES,
    ),
    ("ARCHIVE_ITEM", ARCHIVE_ITEM),
    ("ITEMS_BY_COLUMN_VALUE", ITEMS_BY_COLUMN_VALUE),
    ("ITEMS_BY_COLUMN_VALUES", ITEMS_BY_COLUMN_VALUES),
    ("ITEMS_BY_COLUMN_VALUES_NEXT", ITEMS_BY_COLUMN_VALUES_NEXT),
    ("GET_ITEM", GET_ITEM),
    ("BOARD_COLUMNS", BOARD_COLUMNS),
    ("BOARD_COLUMN_SETTINGS", BOARD_COLUMN_SETTINGS),
    ("ME", ME),
    ("BOARD_WEBHOOKS", BOARD_WEBHOOKS),
    ("CREATE_WEBHOOK", CREATE_WEBHOOK),
    ("CREATE_COLUMN", CREATE_COLUMN),
    ("BOARD_ITEMS_PAGE", BOARD_ITEMS_PAGE),
    ("NEXT_ITEMS_PAGE", NEXT_ITEMS_PAGE),
];

/// The first root field a document selects (for an aliased field, the field, not the alias):
/// the `operation` label of `gateway_monday_requests_total`.
pub fn root_field(document: &str) -> &str {
    fn ident(s: &str) -> (&str, &str) {
        let s = s.trim_start();
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        (&s[..end], s[end..].trim_start())
    }
    let Some((_, body)) = document.split_once('{') else {
        return "unknown";
    };
    let (first, rest) = ident(body);
    let name = match rest.strip_prefix(':') {
        Some(aliased) => ident(aliased).0,
        None => first,
    };
    if name.is_empty() { "unknown" } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_field_names_the_first_field_not_its_alias() {
        let cases = [
            (CREATE_ITEM, "create_item"),
            (ITEMS_BY_COLUMN_VALUE, "items_page_by_column_values"),
            (BOARD_COLUMNS, "boards"),
            (ME, "me"),
            (BOARD_WEBHOOKS, "webhooks"),
            (
                "mutation { item_0: archive_item(item_id: 1) { id } }",
                "archive_item",
            ),
            ("not a document", "unknown"),
            ("{ }", "unknown"),
        ];
        for (document, expected) in cases {
            assert_eq!(root_field(document), expected, "{document}");
        }
    }
}
