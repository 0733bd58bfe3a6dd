//! The `service-fork` component. Routes are added with the family's issue; until
//! then every path answers 404 naming this component.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_component;

const COMPONENT: &str = "service-fork";

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let path = req.path().to_string();
    Ok(spin_adapter::reply::no_route(COMPONENT, &format!("{:?}", req.method()), &path))
}
