//! A JSON response body kept as the exact text sent, so a replayed
//! idempotent response is the first one byte for byte. Documented with
//! `T`'s schema.

use std::marker::PhantomData;

use poem::{IntoResponse, Response};
use poem_openapi::{
    payload::{Json, Payload},
    registry::{MetaSchemaRef, Registry},
    types::{ToJSON, Type},
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

impl<T: Type> Payload for JsonText<T> {
    const CONTENT_TYPE: &'static str = <Json<T> as Payload>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        <Json<T> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry)
    }
}

impl<T: Send> IntoResponse for JsonText<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(<Json<serde_json::Value> as Payload>::CONTENT_TYPE)
            .body(self.text)
    }
}
