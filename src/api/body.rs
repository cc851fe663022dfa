//! Sync request bodies: admitted before they are read ([`SyncBody`]), read
//! within the request's charge, then checked against their schema
//! ([`ValidatedJson`], see `validation.rs`).

use std::marker::PhantomData;

use poem::{Request, RequestBody};
use poem_openapi::{
    payload::{ParsePayload, Payload},
    types::{ParseFromJSON, Type},
};
use serde_json::Value;

use crate::{
    api::{error::ApiError, payload::json_payload, validation::schema_issues},
    domain::admission::Ticket,
    error::Issue,
};

/// Largest accepted request body, in bytes. Put on the route as data.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The JSON body of a write, not read yet: a write is admitted (and
/// charged for its body) before its body is read, so that a refused
/// request costs no memory. [`Self::read`] reads it within its charge.
pub struct SyncBody<T> {
    body: poem::Body,
    limit: usize,
    declared: Option<u64>,
    idempotency_header: Option<String>,
    _t: PhantomData<fn() -> T>,
}

impl<T> SyncBody<T> {
    /// The length the request declared (`Content-Length`), if any.
    pub fn declared_len(&self) -> Option<u64> {
        self.declared
    }

    /// The raw `Idempotency-Key` header, taken with the body because the
    /// sync that reads one needs the other. poem's typed header reads a
    /// value that is not visible ASCII as absent, which would silently drop
    /// idempotency; it is read lossily instead, so such a key is reported
    /// as invalid.
    pub fn take_idempotency_header(&mut self) -> Option<String> {
        self.idempotency_header.take()
    }

    /// Reads the body, growing `ticket`'s charge when it outgrows what the
    /// request declared: 413 over the body limit, 429/503 when the budgets
    /// have no room for it, 400 `INVALID_REQUEST` when it is not JSON.
    pub async fn read(self, ticket: &mut Ticket) -> Result<ValidatedJson<T>, ApiError> {
        use futures_util::StreamExt;
        let capacity = self.declared.unwrap_or(0).min(self.limit as u64);
        let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
        let mut stream = std::pin::pin!(self.body.into_bytes_stream());
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| ApiError::not_json())?;
            if bytes.len() + chunk.len() > self.limit {
                return Err(ApiError::payload_too_large());
            }
            bytes.extend_from_slice(&chunk);
            if let Err(refused) = ticket.cover(bytes.len() as u64) {
                drop(bytes);
                discard(stream).await;
                return Err(refused.into());
            }
        }
        let raw = serde_json::from_slice(&bytes).map_err(|_| ApiError::not_json())?;
        Ok(ValidatedJson {
            raw,
            _t: PhantomData,
        })
    }

    /// Reads and drops the body of a refused request, so that the client,
    /// still sending it, reads the answer rather than a reset connection.
    pub async fn discard(self) {
        discard(self.body.into_bytes_stream()).await
    }
}

/// Reads and drops what is left of a body, holding one chunk at a time;
/// gives up after [`DISCARD_WITHIN`].
async fn discard<B, E>(stream: impl futures_util::Stream<Item = Result<B, E>>) {
    use futures_util::StreamExt;
    let drain = stream
        .take_while(|chunk| std::future::ready(chunk.is_ok()))
        .for_each(|_| std::future::ready(()));
    let _ = tokio::time::timeout(DISCARD_WITHIN, drain).await;
}

/// Longest time spent reading the body of a refused request.
const DISCARD_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// A JSON request body whose schema is `T`'s, validated by [`Self::into_validated`].
pub struct ValidatedJson<T> {
    raw: Value,
    _t: PhantomData<fn() -> T>,
}

impl<T, I> crate::domain::sync::SyncBody<I> for ValidatedJson<T>
where
    T: Type + ParseFromJSON + Into<Vec<I>> + 'static,
{
    fn raw(&self) -> &Value {
        &self.raw
    }

    fn raw_mut(&mut self) -> &mut Value {
        &mut self.raw
    }

    fn into_inputs(self) -> Result<Vec<I>, Vec<Issue>> {
        self.into_validated().map(Into::into)
    }
}

impl<T: Type + ParseFromJSON + 'static> ValidatedJson<T> {
    /// Every issue the schema finds, or the parsed body when there is none.
    /// Consumes the body: a batch of 1,000 orders is not copied to parse it.
    pub fn into_validated(self) -> Result<T, Vec<Issue>> {
        let issues = schema_issues::<T>(&self.raw);
        if !issues.is_empty() {
            return Err(issues);
        }
        // The walk covers everything the parser checks, so a failure here
        // means the two disagree: report it rather than panic.
        T::parse_from_json(Some(self.raw))
            .map_err(|e| vec![Issue::new("", "custom", e.into_message())])
    }
}

json_payload!(SyncBody);

impl<T: Type + ParseFromJSON> ParsePayload for SyncBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(req: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        Ok(Self {
            body: body.take()?,
            limit: req.data::<BodyLimit>().map_or(usize::MAX, |l| l.0),
            declared,
            idempotency_header: req
                .headers()
                .get("idempotency-key")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            _t: PhantomData,
        })
    }
}

poem_openapi::impl_apirequest_for_payload!(SyncBody<T>, T: Type + ParseFromJSON);
