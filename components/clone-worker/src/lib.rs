//! The clone worker: a cron component (`handle-cron-event`) that also serves
//! `/internal/worker/...` for hosts without a cron trigger.

wit_bindgen::generate!({
    path: "../../wit",
    world: "spinoff:app/clone-worker",
    generate_all,
});

struct Worker;

impl Guest for Worker {
    fn handle_cron_event(_metadata: Metadata) -> Result<(), Error> {
        Ok(())
    }
}

export!(Worker);

mod http {
    use spin_sdk::http::{IntoResponse, Request};
    use spin_sdk::http_component;

    #[http_component]
    fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
        let path = req.path().to_string();
        Ok(spin_adapter::reply::no_route("clone-worker", &format!("{:?}", req.method()), &path))
    }
}
