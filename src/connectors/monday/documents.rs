//! Every GraphQL document the gateway sends to monday, by name.
//!
//! Owns: the documents only (their variables are built by the client). Each one is validated by
//! the tests against the simulator's subset SDL and, when present, monday's own SDL.
//! May import: nothing.

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

/// The user the API token acts as: the `userId` Monday puts on the webhooks of the gateway's own
/// writes, which is how an echo is told from a person's edit.
pub const ME: &str = r#"query Me {
  me {
    id
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
    ("GET_ITEM", GET_ITEM),
    ("BOARD_COLUMNS", BOARD_COLUMNS),
    ("ME", ME),
    ("BOARD_ITEMS_PAGE", BOARD_ITEMS_PAGE),
    ("NEXT_ITEMS_PAGE", NEXT_ITEMS_PAGE),
];
