//! `GET /customers` → `QueryCustomersCredit`: the partner's customers, filtered and paged.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{Authorized, Paging, ReadsCustomers};
use crate::context::Subject;
use crate::domain::FieldError;
use crate::openapi::ForwardingProblems;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;
use crate::tencent::actions::{Action, QueryCustomersCredit};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomersResponse {
    /// How many customers match, in all.
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
    pub customers: Vec<CustomerSummary>,
    /// Tencent's `RequestId`.
    pub request_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"uin": "800000232018", "name": "Customer 00", "email": "customer00@example.com", "type": "personal", "credit": 100.5, "remainingCredit": 80.25, "associatedAt": "2026-01-01 08:00:00", "remark": ""}))]
pub struct CustomerSummary {
    /// The customer's UIN, as a string.
    pub uin: String,
    pub name: String,
    pub email: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub credit: Option<f64>,
    pub remaining_credit: Option<f64>,
    /// When the customer was associated with the partner, as Tencent writes it.
    pub associated_at: String,
    pub remark: String,
}

/// What `GET /customers` asks Tencent for.
#[derive(Debug)]
struct Listing {
    paging: Paging,
    filter: Option<(&'static str, String)>,
    ascending: bool,
}

const FILTER_TYPES: [&str; 4] = ["ClientUin", "Name", "Remark", "Email"];

/// Parses the query, naming every parameter that is wrong.
fn listing(query: Option<&str>) -> Result<Listing, ApiError> {
    let mut listing = Listing {
        paging: Paging::default(),
        filter: None,
        ascending: false,
    };
    let (mut filter_type, mut filter) = (None, None);
    // Given but wrong: named once, for what it is.
    let (mut type_given, mut filter_given) = (false, false);
    let mut errors = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        type_given |= name == "filterType";
        filter_given |= name == "filter";
        if let Some(taken) = listing.paging.take(&name, &value) {
            errors.extend(taken.err());
            continue;
        }
        match name.as_ref() {
            "order" => match value.as_ref() {
                "asc" => listing.ascending = true,
                "desc" => listing.ascending = false,
                _ => errors.push(FieldError::new("order", "must be asc or desc")),
            },
            "filterType" => match FILTER_TYPES.iter().find(|t| t.eq_ignore_ascii_case(&value)) {
                Some(t) => filter_type = Some(*t),
                None => errors.push(FieldError::new(
                    "filterType",
                    "must be ClientUin, Name, Remark or Email",
                )),
            },
            "filter" => {
                let text = value.trim();
                if text.is_empty()
                    || text.chars().count() > 128
                    || text.chars().any(char::is_control)
                {
                    errors.push(FieldError::new(
                        "filter",
                        "must be 1 to 128 characters, no control characters",
                    ));
                } else {
                    filter = Some(text.to_owned());
                }
            }
            _ => errors.push(FieldError::new(
                name.into_owned(),
                "is not a parameter of this route",
            )),
        }
    }
    match (filter_type, filter) {
        (Some(t), Some(f)) => {
            if t == "ClientUin" && crate::domain::ClientUin::parse(&f).is_err() {
                errors.push(FieldError::new(
                    "filter",
                    "must be a UIN with filterType ClientUin",
                ));
            }
            listing.filter = Some((t, f));
        }
        (None, None) => {}
        (Some(_), None) if !filter_given => {
            errors.push(FieldError::new("filter", "is required with filterType"))
        }
        (None, Some(_)) if !type_given => {
            errors.push(FieldError::new("filterType", "is required with filter"))
        }
        _ => {}
    }
    if errors.is_empty() {
        Ok(listing)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// The partner's customers with their credit, newest association first (or `order=asc`).
///
/// Identical concurrent queries share one call, and answers are reused for `reads.cache_ms`;
/// an allocation through the gateway is visible at once.
#[utoipa::path(
    get,
    path = "/customers",
    tag = "customers",
    security(("bearer" = ["customers:read"])),
    params(
        ("page" = Option<u64>, Query, description = "Page, from 1 (at most 1000)", minimum = 1, maximum = 1000),
        ("pageSize" = Option<u64>, Query, description = "Customers per page, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("filterType" = Option<String>, Query, description = "`ClientUin`, `Name`, `Remark` or `Email`; with `filter`"),
        ("filter" = Option<String>, Query, description = "What to look for (1 to 128 characters); with `filterType`", max_length = 128),
        ("order" = Option<String>, Query, description = "`desc` (default) or `asc`, by association time"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of an answer you hold: 304 when it is still current"),
    ),
    responses(
        (status = 200, description = "One page of the partner's customers", body = CustomersResponse,
            headers(("ETag" = String), ("Age" = String, description = "seconds since Tencent answered"))),
        (status = 304, description = "Unchanged since the answer whose `ETag` was sent",
            headers(("ETag" = String), ("Age" = String, description = "seconds since Tencent answered"))),
        (status = 403, description = "`insufficient-scope`: the caller lacks `customers:read`", body = Problem, content_type = "application/problem+json"),
        ForwardingProblems,
    )
)]
#[tracing::instrument(name = "list_customers", skip_all)]
pub async fn list_customers(
    _reader: Authorized<ReadsCustomers>,
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: http::HeaderMap,
) -> Response {
    let result = async {
        let listing = listing(query.as_deref())?;
        let (filter_type, filter) = listing
            .filter
            .map_or((None, None), |(t, f)| (Some(t), Some(f)));
        let action = QueryCustomersCredit {
            filter_type,
            filter,
            page: listing.paging.page,
            page_size: listing.paging.size,
            order: if listing.ascending { "asc" } else { "desc" },
        };
        // Equal queries, equal keys: the request Tencent would get.
        let key = serde_json::to_string(&action).expect("actions serialize");
        let fetched = app.reads.customers(key, action).await?;
        let customers = fetched
            .value
            .data
            .iter()
            .map(|c| CustomerSummary {
                uin: c.client_uin.to_string(),
                name: c.name.clone(),
                email: c.email.clone(),
                kind: c.kind.clone(),
                credit: c.credit,
                remaining_credit: c.remaining_credit,
                associated_at: c.association_time.clone(),
                remark: c.remark.clone(),
            })
            .collect();
        let body = CustomersResponse {
            total: fetched.value.total,
            page: listing.paging.page,
            page_size: listing.paging.size,
            customers,
            request_id: fetched.request_id.clone(),
        };
        let values = serde_json::to_string(&(&body.total, &body.customers)).expect("serializes");
        Ok(super::reads::cached(
            &body,
            &values,
            (QueryCustomersCredit::NAME, &fetched),
            &headers,
        ))
    }
    .await;
    super::answered(result, Subject::default())
}
