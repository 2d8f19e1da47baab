//! End-to-end tests: the real gateway against the sandbox simulator on loopback.

mod auth;
mod binary;
mod chaos;
mod cluster;
mod credit;
mod customers;
mod deploy;
mod errors;
mod exactly_once;
mod faults;
mod helpers;
mod hostile;
mod invitations;
mod lookups;
mod money_safety;
mod observability;
mod openapi;
mod quota;
mod read_fleet;
mod reads;
mod redis_server;
mod scale_out;
mod secrets;
mod shutdown;
mod validation;
mod wire;
