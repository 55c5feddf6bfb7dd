//! Simulators of the systems ghlsync talks to, for tests, the demo and
//! benchmarks: loopback only, never the internet.

pub mod ghl;
