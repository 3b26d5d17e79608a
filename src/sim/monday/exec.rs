//! Executes a validated GraphQL operation against the simulator's store.
//!
//! Owns: argument resolution (literals, variables, schema defaults), the resolvers of the fields
//! the subset SDL defines, and the projection of results onto the selection set (aliases,
//! fragments, `@skip`/`@include`, `__typename`), with field errors in monday's shape (null field,
//! `errors[]` with `path`, `locations` and `extensions.{code, status_code, error_data}`).
//! Also the query cost the budget charges.
//! May import: std, apollo-compiler, serde_json, time, crate::domain::entity, the sibling modules.

use apollo_compiler::ExecutableDocument;
use apollo_compiler::ast;
use apollo_compiler::executable::{Field, Operation, Selection, SelectionSet};
use apollo_compiler::validation::Valid;
use apollo_compiler::{Node, ast::OperationType};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::store::{
    Change, FieldError, ItemView, Store, api_value, column_value_typename, display_text, iso_ms,
};
use super::{ItemState, SimBoard, SimColumn, SimWebhook, setup};
use crate::domain::entity::{BoardId, MondayItemId};

/// Complexity points: monday's documented 10,000 per `create_item`.
const CREATE_ITEM_COST: u64 = 10_000;
const OTHER_MUTATION_COST: u64 = 1_000;
const QUERY_FIELD_COST: u64 = 100;
/// Largest `limit` of `items_page_by_column_values`.
const MAX_PAGE_LIMIT: i64 = 500;

/// One operation of a validated document, with its coerced variables.
pub(super) struct Request<'a> {
    pub doc: &'a Valid<ExecutableDocument>,
    pub operation: &'a Operation,
    pub variables: &'a Map<String, Value>,
    /// Webhook URLs that answered the challenge for this request (`create_webhook`).
    pub verified_urls: &'a [String],
}

/// The answer body (`data` and `errors`, without `extensions`) and what the writes did.
pub(super) struct Outcome {
    pub body: Map<String, Value>,
    pub changes: Vec<Change>,
}

impl Request<'_> {
    pub(super) fn is_mutation(&self) -> bool {
        self.operation.operation_type == OperationType::Mutation
    }

    /// The `url` of every `create_webhook` the operation runs: monday challenges each first.
    pub(super) fn webhook_urls(&self) -> Vec<String> {
        if !self.is_mutation() {
            return Vec::new();
        }
        self.collect(&[&self.operation.selection_set], "Mutation", None)
            .iter()
            .map(|(_, fields)| fields[0].as_ref())
            .filter(|f| f.name == "create_webhook")
            .filter_map(|f| self.arg(f, "url").as_str().map(str::to_owned))
            .collect()
    }

    /// The value of argument `name` of `field` (specified, else the schema default, else null).
    fn arg(&self, field: &Field, name: &str) -> Value {
        match field.argument_by_name(name) {
            Ok(value) => self.value(value),
            Err(_) => Value::Null,
        }
    }

    fn value(&self, value: &ast::Value) -> Value {
        match value {
            ast::Value::Null => Value::Null,
            ast::Value::Enum(name) => Value::String(name.to_string()),
            ast::Value::Variable(name) => self
                .variables
                .get(name.as_str())
                .cloned()
                .unwrap_or(Value::Null),
            ast::Value::String(s) => Value::String(s.clone()),
            ast::Value::Float(f) => f
                .try_to_f64()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
            ast::Value::Int(i) => match i.as_str().parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => i
                    .try_to_f64()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number),
            },
            ast::Value::Boolean(b) => Value::Bool(*b),
            ast::Value::List(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            ast::Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), self.value(v)))
                    .collect(),
            ),
        }
    }

    /// `@skip(if:)` / `@include(if:)`.
    fn included(&self, directives: &ast::DirectiveList) -> bool {
        let flag = |name: &str| {
            directives
                .get(name)
                .and_then(|d| d.specified_argument_by_name("if"))
                .map(|v| self.value(v) == Value::Bool(true))
        };
        flag("skip") != Some(true) && flag("include") != Some(false)
    }

    /// The fields of `sets` that apply to an object of type `type_name`, grouped by response key
    /// in order of first appearance (CollectFields of the spec).
    fn collect<'d>(
        &'d self,
        sets: &[&'d SelectionSet],
        type_name: &str,
        abstract_name: Option<&str>,
    ) -> Vec<(String, Vec<&'d Node<Field>>)> {
        let mut groups: Vec<(String, Vec<&'d Node<Field>>)> = Vec::new();
        let applies = |cond: &str| cond == type_name || Some(cond) == abstract_name;
        // Depth-first, in document order.
        fn walk<'d>(
            req: &'d Request<'_>,
            set: &'d SelectionSet,
            applies: &dyn Fn(&str) -> bool,
            groups: &mut Vec<(String, Vec<&'d Node<Field>>)>,
        ) {
            for selection in &set.selections {
                match selection {
                    Selection::Field(field) => {
                        if !req.included(&field.directives) {
                            continue;
                        }
                        let key = field.response_key().to_string();
                        match groups.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, fields)) => fields.push(field),
                            None => groups.push((key, vec![field])),
                        }
                    }
                    Selection::InlineFragment(fragment) => {
                        let type_ok = fragment
                            .type_condition
                            .as_ref()
                            .is_none_or(|c| applies(c.as_str()));
                        if type_ok && req.included(&fragment.directives) {
                            walk(req, &fragment.selection_set, applies, groups);
                        }
                    }
                    Selection::FragmentSpread(spread) => {
                        if !req.included(&spread.directives) {
                            continue;
                        }
                        if let Some(fragment) = req.doc.fragments.get(&spread.fragment_name)
                            && applies(fragment.type_condition().as_str())
                        {
                            walk(req, &fragment.selection_set, applies, groups);
                        }
                    }
                }
            }
        }
        for set in sets {
            walk(self, set, &applies, &mut groups);
        }
        groups
    }

    /// The complexity points the operation costs: 10,000 per `create_item`, 1,000 per other
    /// mutation, 100 per query field plus the number of items it may return.
    pub(super) fn cost(&self) -> u64 {
        let root = self.root_type();
        self.collect(&[&self.operation.selection_set], root, None)
            .iter()
            .map(|(_, fields)| {
                let field = fields[0].as_ref();
                match field.name.as_str() {
                    "__typename" | "complexity" => 0,
                    "create_item" => CREATE_ITEM_COST,
                    _ if self.is_mutation() => OTHER_MUTATION_COST,
                    "items" => {
                        let limit = self.arg(field, "limit").as_u64().unwrap_or(25);
                        let ids = self.arg(field, "ids").as_array().map(Vec::len);
                        QUERY_FIELD_COST + ids.map_or(limit, |n| (n as u64).min(limit))
                    }
                    "items_page_by_column_values" | "next_items_page" => {
                        QUERY_FIELD_COST + self.arg(field, "limit").as_u64().unwrap_or(25)
                    }
                    _ => QUERY_FIELD_COST,
                }
            })
            .sum()
    }

    fn root_type(&self) -> &'static str {
        if self.is_mutation() {
            "Mutation"
        } else {
            "Query"
        }
    }
}

/// One page of items and the cursor of the next (`None` on the last).
#[derive(Clone)]
struct Page {
    cursor: Option<String>,
    items: Vec<ItemView>,
}

/// A resolved field before projection.
enum Resolved {
    Leaf(Value),
    Object(Obj),
    List(Vec<Resolved>),
}

/// The objects the subset schema has.
enum Obj {
    Item(Box<ItemView>),
    /// A board, with its `items_page` fields already run (by response key).
    Board(SimBoard, Vec<(String, Page)>),
    Column(SimColumn),
    ColumnValue {
        column: SimColumn,
        stored: Option<Value>,
        changed_at: Option<OffsetDateTime>,
    },
    ItemsResponse {
        cursor: Option<String>,
        items: Vec<ItemView>,
    },
    User(i64),
    PeopleEntity(Value),
    Complexity(Complexity),
    Webhook(SimWebhook),
}

/// What `complexity { before after query reset_in_x_seconds }` answers for one request.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Complexity {
    pub before: u64,
    pub query: u64,
    pub reset_in_x_seconds: u64,
}

impl Obj {
    fn type_name(&self) -> &'static str {
        match self {
            Obj::Item(_) => "Item",
            Obj::Board(..) => "Board",
            Obj::Column(_) => "Column",
            Obj::ColumnValue { column, .. } => column_value_typename(&column.column_type),
            Obj::ItemsResponse { .. } => "ItemsResponse",
            Obj::User(_) => "User",
            Obj::PeopleEntity(_) => "PeopleEntity",
            Obj::Complexity(_) => "Complexity",
            Obj::Webhook(_) => "Webhook",
        }
    }

    fn abstract_name(&self) -> Option<&'static str> {
        matches!(self, Obj::ColumnValue { .. }).then_some("ColumnValue")
    }
}

fn leaf(v: impl Into<Value>) -> Resolved {
    Resolved::Leaf(v.into())
}

fn opt_str(v: Option<&str>) -> Resolved {
    v.map_or(Resolved::Leaf(Value::Null), leaf)
}

fn state_name(state: ItemState) -> &'static str {
    match state {
        ItemState::Active => "active",
        ItemState::Archived => "archived",
        ItemState::Deleted => "deleted",
    }
}

/// Only the values whose string form is in `filter` (all when the filter is null).
fn string_filter(filter: &Value) -> Option<Vec<String>> {
    filter.as_array().map(|list| {
        list.iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    })
}

fn columns_of(board: &SimBoard, ids: &Value, types: &Value) -> Vec<SimColumn> {
    let ids = string_filter(ids);
    let types = string_filter(types);
    board
        .columns
        .iter()
        .filter(|c| ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
        .filter(|c| types.as_ref().is_none_or(|t| t.contains(&c.column_type)))
        .cloned()
        .collect()
}

/// A numeric `ID` argument (a string of digits or an integer).
pub(super) fn id_arg(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

struct Executor<'r, 'a> {
    req: &'r Request<'a>,
    integration_user_id: i64,
    complexity: Complexity,
}

impl Executor<'_, '_> {
    /// A nested (non-root) field of an object; these never fail.
    fn resolve(&self, obj: &Obj, field: &Field) -> Resolved {
        let arg = |name: &str| self.req.arg(field, name);
        let name = field.name.as_str();
        match obj {
            Obj::Item(view) => match name {
                "id" => leaf(view.item.id.to_string()),
                "name" => leaf(view.item.name.clone()),
                "state" => leaf(state_name(view.item.state)),
                "board" => match &view.board {
                    Some(b) => Resolved::Object(Obj::Board(b.clone(), Vec::new())),
                    None => Resolved::Leaf(Value::Null),
                },
                "column_values" => {
                    let columns = match &view.board {
                        Some(b) => columns_of(b, &arg("ids"), &arg("types")),
                        None => Vec::new(),
                    };
                    Resolved::List(
                        columns
                            .into_iter()
                            .map(|column| {
                                let stored = view.item.column_values.get(&column.id).cloned();
                                let changed_at = view.changed_at.get(&column.id).copied();
                                Resolved::Object(Obj::ColumnValue {
                                    column,
                                    stored,
                                    changed_at,
                                })
                            })
                            .collect(),
                    )
                }
                _ => Resolved::Leaf(Value::Null),
            },
            Obj::Board(board, pages) => match name {
                "items_page" => match pages
                    .iter()
                    .find(|(k, _)| *k == field.response_key().as_str())
                {
                    Some((_, page)) => Resolved::Object(Obj::ItemsResponse {
                        cursor: page.cursor.clone(),
                        items: page.items.clone(),
                    }),
                    None => Resolved::Leaf(Value::Null),
                },
                "id" => leaf(board.id.to_string()),
                "name" => leaf(board.name.clone()),
                "columns" => Resolved::List(
                    columns_of(board, &arg("ids"), &arg("types"))
                        .into_iter()
                        .map(|c| Resolved::Object(Obj::Column(c)))
                        .collect(),
                ),
                _ => Resolved::Leaf(Value::Null),
            },
            Obj::Column(column) => match name {
                "id" => leaf(column.id.clone()),
                "title" => leaf(column.title.clone()),
                "type" => leaf(column.column_type.clone()),
                "settings_str" => leaf(super::store::column_settings_str(column)),
                _ => Resolved::Leaf(Value::Null),
            },
            Obj::ColumnValue {
                column,
                stored,
                changed_at,
            } => {
                let stored = stored.as_ref();
                let s =
                    |key: &str| opt_str(stored.and_then(|v| v.get(key)).and_then(Value::as_str));
                match name {
                    "id" => leaf(column.id.clone()),
                    "type" => leaf(column.column_type.clone()),
                    "column" => Resolved::Object(Obj::Column(column.clone())),
                    "is_leaf" => leaf(true),
                    "text" => leaf(display_text(column, stored)),
                    "value" => match api_value(column, stored, *changed_at) {
                        Some(v) => leaf(v.to_string()),
                        None => Resolved::Leaf(Value::Null),
                    },
                    "updated_at" => opt_str(changed_at.map(iso_ms).as_deref()),
                    "email" => s("email"),
                    "label" if column.column_type == "email" => s("text"),
                    "label" => stored.map_or(Resolved::Leaf(Value::Null), |_| {
                        leaf(display_text(column, stored))
                    }),
                    "phone" => s("phone"),
                    "country_short_name" => s("countryShortName"),
                    "url" => s("url"),
                    "url_text" => s("text"),
                    "display_value" => leaf(display_text(column, stored)),
                    "linked_item_ids" => Resolved::List(
                        stored
                            .map(super::store::stored_relation_ids)
                            .unwrap_or_default()
                            .into_iter()
                            .map(|id| leaf(id.to_string()))
                            .collect(),
                    ),
                    "date" => s("date"),
                    "time" => s("time"),
                    "icon" => Resolved::Leaf(Value::Null),
                    "index" => {
                        let index = api_value(column, stored, None)
                            .and_then(|v| v.get("index").cloned())
                            .unwrap_or(Value::Null);
                        Resolved::Leaf(index)
                    }
                    "is_done" => Resolved::Leaf(
                        super::store::webhook_value(column, stored, OffsetDateTime::UNIX_EPOCH)
                            .pointer("/label/is_done")
                            .cloned()
                            .unwrap_or(Value::Null),
                    ),
                    "persons_and_teams" => match stored
                        .and_then(|v| v.get("personsAndTeams"))
                        .and_then(Value::as_array)
                    {
                        Some(list) => Resolved::List(
                            list.iter()
                                .map(|e| Resolved::Object(Obj::PeopleEntity(e.clone())))
                                .collect(),
                        ),
                        None => Resolved::Leaf(Value::Null),
                    },
                    _ => Resolved::Leaf(Value::Null),
                }
            }
            Obj::ItemsResponse { cursor, items } => match name {
                "cursor" => opt_str(cursor.as_deref()),
                "items" => Resolved::List(
                    items
                        .iter()
                        .map(|v| Resolved::Object(Obj::Item(Box::new(v.clone()))))
                        .collect(),
                ),
                _ => Resolved::Leaf(Value::Null),
            },
            Obj::User(id) => match name {
                "id" => leaf(id.to_string()),
                _ => Resolved::Leaf(Value::Null),
            },
            Obj::Webhook(w) => match name {
                "id" => leaf(w.id.to_string()),
                "board_id" => leaf(w.board_id.to_string()),
                "event" => leaf(w.event.clone()),
                "config" => opt_str(w.config.as_deref()),
                _ => Resolved::Leaf(Value::Null),
            },
            Obj::PeopleEntity(entity) => match name {
                "id" => match entity.get("id") {
                    Some(Value::Number(n)) => leaf(n.to_string()),
                    Some(other) => Resolved::Leaf(other.clone()),
                    None => Resolved::Leaf(Value::Null),
                },
                "kind" => Resolved::Leaf(entity.get("kind").cloned().unwrap_or(Value::Null)),
                _ => Resolved::Leaf(Value::Null),
            },
            Obj::Complexity(c) => match name {
                "before" => leaf(c.before),
                "after" => leaf(c.before.saturating_sub(c.query)),
                "query" => leaf(c.query),
                "reset_in_x_seconds" => leaf(c.reset_in_x_seconds),
                _ => Resolved::Leaf(Value::Null),
            },
        }
    }

    /// The selected fields of `obj`.
    fn project(&self, obj: &Obj, sets: &[&SelectionSet]) -> Value {
        let mut out = Map::new();
        for (key, fields) in self.req.collect(sets, obj.type_name(), obj.abstract_name()) {
            let field = fields[0].as_ref();
            let value = if field.name == "__typename" {
                Value::String(obj.type_name().to_owned())
            } else {
                let sub: Vec<&SelectionSet> = fields.iter().map(|f| &f.selection_set).collect();
                self.complete(self.resolve(obj, field), &sub)
            };
            out.insert(key, value);
        }
        Value::Object(out)
    }

    fn complete(&self, resolved: Resolved, sets: &[&SelectionSet]) -> Value {
        match resolved {
            Resolved::Leaf(v) => v,
            Resolved::Object(obj) => self.project(&obj, sets),
            Resolved::List(items) => {
                Value::Array(items.into_iter().map(|r| self.complete(r, sets)).collect())
            }
        }
    }

    fn view_all(store: &Store, ids: impl IntoIterator<Item = MondayItemId>) -> Vec<ItemView> {
        ids.into_iter().filter_map(|id| store.view(id)).collect()
    }

    /// Runs the `items_page` fields selected on `board` (the first page of a walk of its active
    /// items, in id order), by response key.
    fn items_pages(
        &self,
        store: &mut Store,
        board: &SimBoard,
        boards_field: &Field,
    ) -> Result<Vec<(String, Page)>, FieldError> {
        let mut pages = Vec::new();
        for (key, fields) in self
            .req
            .collect(&[&boards_field.selection_set], "Board", None)
        {
            let field = fields[0].as_ref();
            if field.name != "items_page" {
                continue;
            }
            let limit = page_limit(&self.req.arg(field, "limit"))?;
            let ids = match self.req.arg(field, "cursor").as_str() {
                Some(cursor) => match store.cursor_rest(cursor) {
                    Some(rest) if rest.board == board.id => rest.rest,
                    _ => return Err(expired_cursor()),
                },
                None => store.active_items(board.id),
            };
            let issued = store.cursor_now();
            pages.push((key, page_of(store, board.id, ids, limit, issued)));
        }
        Ok(pages)
    }

    /// A root field: a query or a mutation, which may fail with a field error.
    fn root(
        &self,
        store: &mut Store,
        field: &Field,
        now: OffsetDateTime,
        changes: &mut Vec<Change>,
    ) -> Result<Resolved, FieldError> {
        let arg = |name: &str| self.req.arg(field, name);
        let item_object = |store: &Store, id: MondayItemId| match store.view(id) {
            Some(view) => Resolved::Object(Obj::Item(Box::new(view))),
            None => Resolved::Leaf(Value::Null),
        };
        match field.name.as_str() {
            "me" => Ok(Resolved::Object(Obj::User(self.integration_user_id))),
            "complexity" => Ok(Resolved::Object(Obj::Complexity(self.complexity))),
            "boards" => {
                let ids = arg("ids")
                    .as_array()
                    .map(|l| l.iter().filter_map(id_arg).collect::<Vec<_>>());
                let state = arg("state");
                let limit = arg("limit").as_u64().unwrap_or(25).max(1) as usize;
                let page = arg("page").as_u64().unwrap_or(1).max(1) as usize;
                let boards: Vec<Resolved> =
                    if matches!(state.as_str(), Some("archived" | "deleted")) {
                        Vec::new()
                    } else {
                        store
                            .boards()
                            .iter()
                            .filter(|b| ids.as_ref().is_none_or(|ids| ids.contains(&b.id.0)))
                            .skip((page - 1) * limit)
                            .take(limit)
                            .cloned()
                            .collect::<Vec<_>>()
                            .into_iter()
                            .map(|b| {
                                let pages = self.items_pages(store, &b, field)?;
                                Ok(Resolved::Object(Obj::Board(b, pages)))
                            })
                            .collect::<Result<_, FieldError>>()?
                    };
                Ok(Resolved::List(boards))
            }
            "items" => {
                let limit = arg("limit").as_u64().unwrap_or(25).max(1) as usize;
                let page = arg("page").as_u64().unwrap_or(1).max(1) as usize;
                let exclude_nonactive = arg("exclude_nonactive") == Value::Bool(true);
                let mut ids: Vec<MondayItemId> = match arg("ids").as_array() {
                    Some(list) => list.iter().filter_map(id_arg).map(MondayItemId).collect(),
                    None => store.items().map(|s| s.item.id).collect(),
                };
                if arg("newest_first") == Value::Bool(true) {
                    ids.sort_by(|a, b| b.cmp(a));
                }
                let views: Vec<Resolved> = Self::view_all(store, ids)
                    .into_iter()
                    .filter(|v| match v.item.state {
                        ItemState::Deleted => false,
                        ItemState::Archived => !exclude_nonactive,
                        ItemState::Active => true,
                    })
                    .skip((page - 1) * limit)
                    .take(limit)
                    .map(|v| Resolved::Object(Obj::Item(Box::new(v))))
                    .collect();
                Ok(Resolved::List(views))
            }
            "items_page_by_column_values" => {
                let board_arg = arg("board_id");
                let Some(board) = id_arg(&board_arg).and_then(|b| store.board(BoardId(b)).cloned())
                else {
                    return Err(FieldError::board_not_found(&board_arg));
                };
                let limit = arg("limit").as_i64().unwrap_or(25);
                if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
                    return Err(FieldError::invalid_argument(format!(
                        "limit must be between 1 and {MAX_PAGE_LIMIT}"
                    )));
                }
                let limit = limit as usize;
                let columns = arg("columns");
                let cursor = arg("cursor");
                let matching = match (columns.as_array(), cursor.as_str()) {
                    (Some(_), Some(_)) => {
                        return Err(FieldError::invalid_argument(
                            "You can't use columns and cursor in the same request",
                        ));
                    }
                    (_, Some(cursor)) => match store.cursor_rest(cursor) {
                        Some(rest) if rest.board == board.id => rest.rest,
                        _ => return Err(expired_cursor()),
                    },
                    (list, None) => {
                        let conditions: Vec<(String, Vec<String>)> = list
                            .into_iter()
                            .flatten()
                            .map(|c| {
                                let id = c
                                    .get("column_id")
                                    .and_then(Value::as_str)
                                    .unwrap_or_default();
                                let values =
                                    string_filter(c.get("column_values").unwrap_or(&Value::Null))
                                        .unwrap_or_default();
                                (id.to_owned(), values)
                            })
                            .collect();
                        store.search(&board, &conditions)?
                    }
                };
                let (page, rest) = if matching.len() > limit {
                    let (page, rest) = matching.split_at(limit);
                    (page.to_vec(), rest.to_vec())
                } else {
                    (matching, Vec::new())
                };
                let issued = store.cursor_now();
                let cursor = (!rest.is_empty()).then(|| store.save_cursor(board.id, rest, issued));
                Ok(Resolved::Object(Obj::ItemsResponse {
                    cursor,
                    items: Self::view_all(store, page),
                }))
            }
            "next_items_page" => {
                let limit = page_limit(&arg("limit"))?;
                let cursor = arg("cursor");
                let Some(rest) = cursor.as_str().and_then(|c| store.cursor_rest(c)) else {
                    return Err(expired_cursor());
                };
                let page = page_of(store, rest.board, rest.rest, limit, rest.issued);
                Ok(Resolved::Object(Obj::ItemsResponse {
                    cursor: page.cursor,
                    items: page.items,
                }))
            }
            "create_item" => {
                let board_arg = arg("board_id");
                let Some(board) = id_arg(&board_arg) else {
                    return Err(FieldError::board_not_found(&board_arg));
                };
                let name = arg("item_name");
                let (id, mut done) = store.create_item(
                    BoardId(board),
                    name.as_str().unwrap_or_default(),
                    &arg("column_values"),
                    now,
                )?;
                changes.append(&mut done);
                Ok(item_object(store, id))
            }
            "change_multiple_column_values" => {
                let board_arg = arg("board_id");
                let Some(board) = id_arg(&board_arg) else {
                    return Err(FieldError::board_not_found(&board_arg));
                };
                if store.board(BoardId(board)).is_none() {
                    return Err(FieldError::board_not_found(&board_arg));
                }
                let item_arg = arg("item_id");
                let Some(item) = id_arg(&item_arg) else {
                    return Err(FieldError::item_not_found(&item_arg));
                };
                let mut done = store.change_columns(
                    Some(BoardId(board)),
                    MondayItemId(item),
                    &arg("column_values"),
                    now,
                )?;
                changes.append(&mut done);
                Ok(item_object(store, MondayItemId(item)))
            }
            "archive_item" | "delete_item" => {
                let item_arg = arg("item_id");
                let Some(item) = id_arg(&item_arg) else {
                    return Err(FieldError::item_not_found(&item_arg));
                };
                let mut done = store.set_state(MondayItemId(item), field.name == "archive_item")?;
                changes.append(&mut done);
                Ok(item_object(store, MondayItemId(item)))
            }
            "webhooks" | "create_webhook" | "create_column" => self.setup(store, field),
            other => Err(FieldError::invalid_argument(format!(
                "Field '{other}' is not supported by the simulator"
            ))),
        }
    }
}

impl Executor<'_, '_> {
    /// The board set-up fields (see `setup`).
    fn setup(&self, store: &mut Store, field: &Field) -> Result<Resolved, FieldError> {
        let arg = |name: &str| self.req.arg(field, name);
        let text = |name: &str| arg(name).as_str().map(str::to_owned);
        let board = arg("board_id");
        match field.name.as_str() {
            "webhooks" => Ok(Resolved::List(
                setup::board_webhooks(store, &board)?
                    .into_iter()
                    .map(|w| Resolved::Object(Obj::Webhook(w)))
                    .collect(),
            )),
            "create_webhook" => {
                let (url, event) = (text("url").unwrap_or_default(), text("event"));
                let config = match arg("config") {
                    Value::Null => None,
                    Value::String(s) => Some(s),
                    other => Some(other.to_string()),
                };
                let spec = (url.as_str(), event.as_deref().unwrap_or_default(), config);
                let w = setup::create_webhook(store, &board, spec, self.req.verified_urls)?;
                Ok(Resolved::Object(Obj::Webhook(w)))
            }
            _ => {
                let (id, title, column_type) = (text("id"), text("title"), text("column_type"));
                let spec = (
                    id.as_deref(),
                    title.as_deref().unwrap_or_default(),
                    column_type.as_deref().unwrap_or("text"),
                );
                let column = setup::create_column(store, &board, spec)?;
                Ok(Resolved::Object(Obj::Column(column)))
            }
        }
    }
}

/// A page `limit`: 1 to 500.
fn page_limit(limit: &Value) -> Result<usize, FieldError> {
    match limit.as_i64() {
        Some(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n as usize),
        _ => Err(FieldError::invalid_argument(format!(
            "limit must be between 1 and {MAX_PAGE_LIMIT}"
        ))),
    }
}

fn expired_cursor() -> FieldError {
    FieldError::invalid_argument("The cursor is invalid or has expired")
}

/// The first `limit` of `ids` (those still there) and a cursor for the rest of a walk begun at
/// `issued`.
fn page_of(
    store: &mut Store,
    board: BoardId,
    ids: Vec<MondayItemId>,
    limit: usize,
    issued: OffsetDateTime,
) -> Page {
    let split = ids.len().min(limit);
    let (page, rest) = ids.split_at(split);
    let cursor = (!rest.is_empty()).then(|| store.save_cursor(board, rest.to_vec(), issued));
    Page {
        cursor,
        items: Executor::view_all(store, page.iter().copied()),
    }
}

/// Runs the operation's root fields in order; a failing field is null with an `errors` entry.
pub(super) fn execute(
    store: &mut Store,
    req: &Request<'_>,
    integration_user_id: i64,
    complexity: Complexity,
    now: OffsetDateTime,
) -> Outcome {
    let exec = Executor {
        req,
        integration_user_id,
        complexity,
    };
    let root_type = req.root_type();
    let mut data = Map::new();
    let mut errors = Vec::new();
    let mut changes = Vec::new();
    let mut data_is_null = false;
    for (key, fields) in req.collect(&[&req.operation.selection_set], root_type, None) {
        let field = fields[0].as_ref();
        if field.name == "__typename" {
            data.insert(key, Value::String(root_type.to_owned()));
            continue;
        }
        match exec.root(store, field, now, &mut changes) {
            Ok(resolved) => {
                let sub: Vec<&SelectionSet> = fields.iter().map(|f| &f.selection_set).collect();
                data.insert(key, exec.complete(resolved, &sub));
            }
            Err(e) => {
                let location = fields[0]
                    .location()
                    .and_then(|l| l.line_column(&req.doc.sources))
                    .map(|lc| json!([{ "line": lc.line, "column": lc.column }]))
                    .unwrap_or_else(|| json!([]));
                errors.push(json!({
                    "message": e.message,
                    "locations": location,
                    "path": [key],
                    "extensions": {
                        "code": e.code,
                        "status_code": 200,
                        "error_data": e.error_data,
                    },
                }));
                data_is_null |= field.ty().is_non_null();
                data.insert(key, Value::Null);
            }
        }
    }
    let mut body = Map::new();
    body.insert(
        "data".into(),
        if data_is_null {
            Value::Null
        } else {
            Value::Object(data)
        },
    );
    if !errors.is_empty() {
        body.insert("errors".into(), Value::Array(errors));
    }
    Outcome { body, changes }
}
