//! The soak's parts that are not its traffic: the families it drives (a
//! table, not an index), the webhook receivers that misbehave, and what it
//! reads of the host process (`procfs`).

pub mod families;
pub mod process;
pub mod receivers;
