//! The response types every synced resource has, declared once: a sync's
//! 200 (the stored response text with the replay and rate-limit headers), a
//! page of a listing, and the 200s of reading one and listing.

/// Declares, for one resource: `$sync` (the sync's 200), `$page` (a page
/// of `$view`s), `$get` and `$list` (the read operations' 200s).
macro_rules! resource_responses {
    (
        $(#[$sync_doc:meta])* sync: $sync:ident($result:ty),
        $(#[$page_doc:meta])* page: $page:ident($view:ty),
        $(#[$get_doc:meta])* get: $get:ident,
        $(#[$list_doc:meta])* list: $list:ident,
    ) => {
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
            Ok(poem_openapi::payload::Json<$view>),
        }

        #[derive(poem_openapi::ApiResponse)]
        pub enum $list {
            $(#[$list_doc])*
            #[oai(status = 200)]
            Ok(poem_openapi::payload::Json<$page>),
        }
    };
}

pub(crate) use resource_responses;
