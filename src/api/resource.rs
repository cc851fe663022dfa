//! The types every synced resource has, declared once: the sync's request
//! and result, its 200 (the stored response text with the replay and
//! rate-limit headers), a page of a listing, and the 200s of reading one
//! and listing.

/// Declares, for one resource: `$request` (the sync body, a list of
/// `$input`s), `$result` (the sync's answer, a list of `$view`s), `$sync`
/// (the sync's 200), `$page` (a page of `$view`s), `$get` and `$list` (the
/// read operations' 200s; `$get` renders the domain's `$model`).
macro_rules! resource_types {
    (
        $(#[$request_doc:meta])* request: $request:ident {
            $(#[$items_doc:meta])* items: $input:ty,
        },
        $(#[$result_doc:meta])* result: $result:ident($view:ty),
        $(#[$sync_doc:meta])* sync: $sync:ident,
        $(#[$page_doc:meta])* page: $page:ident,
        $(#[$get_doc:meta])* get: $get:ident($model:ty),
        $(#[$list_doc:meta])* list: $list:ident,
    ) => {
        $(#[$request_doc])*
        #[derive(poem_openapi::Object, Debug)]
        #[oai(rename_all = "camelCase", example)]
        pub struct $request {
            /// EntryGo account ID; must be the API key's account.
            #[oai(validator(min_length = 1))]
            pub account_id: String,
            $(#[$items_doc])*
            #[oai(validator(min_items = 1, max_items = 1000))]
            pub items: Vec<$input>,
            /// Optional body-level idempotency key: 1 to 255 visible ASCII
            /// characters (0x21-0x7E). The `Idempotency-Key` header wins when both
            /// are present; this field is then ignored, even when malformed.
            #[oai(
                validator(min_length = 1, max_length = 255, pattern = "^[!-~]+$"),
                nullable,
                skip_serializing_if_is_none
            )]
            pub idempotency_key: Option<String>,
        }

        /// The body's items, as the domain's inputs.
        impl<I> From<$request> for Vec<I>
        where
            $input: Into<I>,
        {
            fn from(request: $request) -> Self {
                request.items.into_iter().map(Into::into).collect()
            }
        }

        $(#[$result_doc])*
        #[derive(poem_openapi::Object, Debug)]
        #[oai(example)]
        pub struct $result {
            pub data: Vec<$view>,
        }

        #[derive(poem_openapi::ApiResponse)]
        pub enum $sync {
            $(#[$sync_doc])*
            #[oai(status = 200)]
            Ok(
                crate::api::payload::JsonText<$result>,
                /// `true` when this is the stored response of an earlier request with
                /// the same idempotency key; absent on a first execution.
                #[oai(header = "Idempotent-Replayed")]
                Option<bool>,
                /// The account's share of in-flight work in this process:
                /// `"inflight";q=<bytes>;qu="content-bytes"` (IETF RateLimit header
                /// fields draft).
                #[oai(header = "RateLimit-Policy")]
                Option<String>,
                /// What was left of the share once this request was admitted:
                /// `"inflight";r=<bytes>`.
                #[oai(header = "RateLimit")]
                Option<String>,
            ),
        }

        impl From<crate::api::Synced> for $sync {
            fn from(synced: crate::api::Synced) -> Self {
                $sync::Ok(
                    crate::api::payload::JsonText::from_text(synced.body),
                    synced.replayed,
                    synced.rate_limit_policy,
                    synced.rate_limit,
                )
            }
        }

        $(#[$page_doc])*
        #[derive(poem_openapi::Object, Debug)]
        #[oai(rename_all = "camelCase")]
        pub struct $page {
            /// In a stable order (by ID).
            pub data: Vec<$view>,
            /// Pass as `cursor` to get the next page; `null` on the last page.
            #[oai(nullable)]
            pub next_cursor: Option<String>,
        }

        #[derive(poem_openapi::ApiResponse)]
        pub enum $get {
            $(#[$get_doc])*
            #[oai(status = 200)]
            Ok(crate::api::payload::JsonText<$view>),
        }

        /// The domain's item, rendered by serde in the view's shape.
        impl From<$model> for $get {
            fn from(item: $model) -> Self {
                $get::Ok(crate::api::payload::JsonText::from_text(
                    serde_json::to_string(&item).expect("an item serialises"),
                ))
            }
        }

        #[derive(poem_openapi::ApiResponse)]
        pub enum $list {
            $(#[$list_doc])*
            #[oai(status = 200)]
            Ok(crate::api::payload::JsonText<$page>),
        }

        /// A page rendered by serde in one pass from the domain's items,
        /// which serialise in the view's shape (as a sync's answer does).
        impl<T: serde::Serialize> From<crate::domain::Page<T>> for $list {
            fn from(page: crate::domain::Page<T>) -> Self {
                $list::Ok(crate::api::payload::JsonText::from_text(crate::domain::render_page(&page)))
            }
        }
    };
}

pub(crate) use resource_types;
