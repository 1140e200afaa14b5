//! A page of a list, `{ "items": [...], "nextCursor": "…" | null }`, and
//! `paginate`, the one way a list handler turns its query and `?cursor=` into a
//! page: the cursor is decoded under the query's fingerprint (400 when this
//! query did not produce it), the page read, and the cursor after its last item
//! encoded under the same fingerprint.

use std::borrow::Cow;
use std::future::Future;

use serde::Serialize;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::{ApiError, PageParams};
use crate::ports::{Item, Query};
use crate::AppState;

/// What `nextCursor` says in every page's schema.
const NEXT_CURSOR: &str = "The cursor of the next page; `null` on the last.";
/// Added for lists whose pages can come back short (`Listed::SHORT_PAGES`).
const SHORT_PAGE: &str = " A page cut short by the\nread budget still carries one.";

/// One page of `T`. `X` holds the fields a list adds besides `items` and
/// `nextCursor` (the notification list's unread count), written between the two.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T, X = NoFields> {
    pub items: Vec<T>,
    #[serde(flatten)]
    pub extra: X,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// No fields besides `items` and `nextCursor`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct NoFields;

impl PartialSchema for NoFields {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Object).into()
    }
}

impl ToSchema for NoFields {}

/// An item type a list pages through, naming that list's page in the OpenAPI
/// document: utoipa would name a generic's instance after its parameters
/// (`Page_Category`), while each list's page keeps its own name and description.
pub trait Listed: ToSchema {
    /// The page's schema name (`CategoryList`).
    const PAGE_NAME: &'static str;
    /// The page's description.
    const PAGE_DESCRIPTION: &'static str;
    /// Whether a page can come back short with a cursor (a list that filters
    /// after the lookup, within a read budget); `nextCursor`'s description says so.
    const SHORT_PAGES: bool = false;
}

impl<T, X> Page<T, X> {
    /// The same page with each item turned into its view.
    pub fn map<U>(self, view: impl FnMut(T) -> U) -> Page<U, X> {
        Page { items: self.items.into_iter().map(view).collect(), extra: self.extra, next_cursor: self.next_cursor }
    }

    /// The same page carrying the list's own fields `extra`.
    pub fn with<Y>(self, extra: Y) -> Page<T, Y> {
        Page { items: self.items, extra, next_cursor: self.next_cursor }
    }
}

/// One page of the list `query` reads, after `page.cursor` when given. `read`
/// reads from the query's start (or its `start_after`) and returns the items
/// and the item to continue after, when more may follow. `scope` names the
/// endpoint and every filter applied after the lookup, so a cursor answers only
/// the query that made it.
pub async fn paginate<T, E, Read, Reading>(
    state: &AppState,
    scope: &str,
    mut query: Query,
    page: &PageParams,
    read: Read,
) -> Result<Page<T>, ApiError>
where
    Read: FnOnce(Query) -> Reading,
    Reading: Future<Output = Result<(Vec<T>, Option<Item>), E>>,
    ApiError: From<E>,
{
    let cursors = state.cursors().await?;
    if let Some(cursor) = &page.cursor {
        query.start_after = Some(cursors.decode(scope, &query, cursor)?);
    }
    let fingerprint = query.clone();
    let (items, last) = read(query).await?;
    let next_cursor = last.map(|last| cursors.encode(scope, &fingerprint, &last));
    Ok(Page { items, extra: NoFields, next_cursor })
}

impl<T: Listed, X: ToSchema> PartialSchema for Page<T, X> {
    fn schema() -> RefOr<Schema> {
        let next_cursor = if T::SHORT_PAGES { format!("{NEXT_CURSOR}{SHORT_PAGE}") } else { NEXT_CURSOR.to_owned() };
        let mut page = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(T::PAGE_DESCRIPTION))
            .property("items", ArrayBuilder::new().items(Ref::from_schema_name(T::name())))
            .required("items")
            .property(
                "nextCursor",
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                    .description(Some(next_cursor)),
            )
            .build();
        if let RefOr::T(Schema::Object(extra)) = X::schema() {
            page.properties.extend(extra.properties);
            page.required.extend(extra.required);
        }
        RefOr::T(Schema::Object(page))
    }
}

impl<T: Listed, X: ToSchema> ToSchema for Page<T, X> {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed(T::PAGE_NAME)
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
        X::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, utoipa::ToSchema)]
    struct Thing {
        n: i64,
    }

    impl Listed for Thing {
        const PAGE_NAME: &'static str = "ThingList";
        const PAGE_DESCRIPTION: &'static str = "A page of things.";
    }

    #[derive(Serialize, utoipa::ToSchema)]
    #[serde(rename_all = "camelCase")]
    struct Counted {
        /// Things in all.
        thing_count: i64,
    }

    #[test]
    fn a_page_writes_items_then_the_lists_own_fields_then_the_cursor() {
        let page = Page { items: vec![1, 2], extra: NoFields, next_cursor: None }.map(|n| Thing { n });
        assert_eq!(serde_json::to_string(&page).unwrap(), r#"{"items":[{"n":1},{"n":2}],"nextCursor":null}"#);
        let page = page.with(Counted { thing_count: 7 });
        assert_eq!(
            serde_json::to_string(&Page { next_cursor: Some("c".into()), ..page }).unwrap(),
            r#"{"items":[{"n":1},{"n":2}],"thingCount":7,"nextCursor":"c"}"#
        );
    }

    #[test]
    fn a_page_is_documented_under_its_lists_name_with_its_own_fields() {
        assert_eq!(<Page<Thing>>::name(), "ThingList");
        let schema = serde_json::to_value(<Page<Thing, Counted>>::schema()).unwrap();
        assert_eq!(schema["description"], "A page of things.");
        assert_eq!(schema["required"], serde_json::json!(["items", "thingCount"]));
        assert_eq!(schema["properties"]["items"]["items"]["$ref"], "#/components/schemas/Thing");
        assert_eq!(schema["properties"]["nextCursor"]["type"], serde_json::json!(["string", "null"]));
        assert_eq!(schema["properties"]["thingCount"]["description"], "Things in all.");
    }
}
