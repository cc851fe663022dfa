//! A JSON response body kept as the exact text sent, so a replayed
//! idempotent response is the first one byte for byte. Documented with
//! `T`'s schema.

use std::marker::PhantomData;

use poem::{IntoResponse, Response};
use poem_openapi::{
    payload::{Json, Payload},
    types::ToJSON,
};

pub struct JsonText<T> {
    text: String,
    _t: PhantomData<fn() -> T>,
}

impl<T: ToJSON> JsonText<T> {
    /// Serialises `value` the way poem-openapi's `Json` does.
    pub fn render(value: &T) -> String {
        value.to_json_string()
    }
}

impl<T> JsonText<T> {
    pub fn from_text(text: String) -> Self {
        Self {
            text,
            _t: PhantomData,
        }
    }
}

/// Documents a payload type `$ty<T>` exactly as poem-openapi's `Json<T>`:
/// its media type and `T`'s schema.
macro_rules! json_payload {
    ($ty:ident) => {
        impl<T: ::poem_openapi::types::Type> ::poem_openapi::payload::Payload for $ty<T> {
            const CONTENT_TYPE: &'static str =
                <::poem_openapi::payload::Json<T> as ::poem_openapi::payload::Payload>::CONTENT_TYPE;

            fn check_content_type(content_type: &str) -> bool {
                <::poem_openapi::payload::Json<T> as ::poem_openapi::payload::Payload>::check_content_type(
                    content_type,
                )
            }

            fn schema_ref() -> ::poem_openapi::registry::MetaSchemaRef {
                T::schema_ref()
            }

            fn register(registry: &mut ::poem_openapi::registry::Registry) {
                T::register(registry)
            }
        }
    };
}
pub(crate) use json_payload;

json_payload!(JsonText);

impl<T: Send> IntoResponse for JsonText<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(<Json<serde_json::Value> as Payload>::CONTENT_TYPE)
            .body(self.text)
    }
}
