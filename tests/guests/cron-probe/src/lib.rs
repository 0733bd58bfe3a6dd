//! A tiny cron guest: each tick adds one to the key-value key `ticks` and
//! stores the tick's timestamp in `last`. When the key `fail` exists it
//! returns the cron error instead, so the host's error path can be tested.

use spin_sdk::key_value::Store;

wit_bindgen::generate!({
    path: "../../../wit",
    world: "fermyon:spin-cron/spin-cron",
});

struct CronProbe;

impl Guest for CronProbe {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        let store = Store::open_default().map_err(|e| Error::Other(format!("{e:?}")))?;
        if store
            .exists("fail")
            .map_err(|e| Error::Other(format!("{e:?}")))?
        {
            return Err(Error::Other("asked to fail".into()));
        }
        let ticks: u64 = store
            .get("ticks")
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let set = |k: &str, v: String| {
            store
                .set(k, v.as_bytes())
                .map_err(|e| Error::Other(format!("{e:?}")))
        };
        set("ticks", (ticks + 1).to_string())?;
        set("last", metadata.timestamp.to_string())?;
        Ok(())
    }
}

export!(CronProbe);
