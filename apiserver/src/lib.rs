//! ballast-apiserver: a Kubernetes-style API server over Ballast (or any etcd v3 store),
//! reached only through ballast-client.
//!
//! A request passes the stages in this order, each a module: [`transport`] (TLS, routing,
//! encodings), [`authn`], [`authz`], then the verb in [`rest`], which runs [`admission`],
//! [`defaults`] and [`validation`] before [`storage`]; [`watch`] serves watches and
//! cached lists from one store watch per resource. [`resources`] is the table every stage
//! reads.

pub mod admission;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod config;
pub mod controllers;
pub mod convert;
pub mod defaults;
pub mod discovery;
pub mod fields;
pub mod impersonation;
pub mod managed;
pub mod metrics;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod printers;
pub mod resources;
pub mod rest;
pub mod selectors;
pub mod server;
pub mod status;
pub mod storage;
pub mod table;
pub mod transport;
pub mod validation;
pub mod watch;

pub use config::Config;
pub use server::run;
